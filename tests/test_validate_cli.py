"""``medic validate``, run as a user runs it: a separate process, its exit
code and what it prints."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.test_config import FIXTURES, REPO_ROOT, expected_lines

SHIPPED_CONFIG = REPO_ROOT / "control-plane" / "config.yaml"
EXIT_OK, EXIT_INVALID, EXIT_UNREADABLE = 0, 1, 2


def medic_validate(
    *args: str, cwd: Path = REPO_ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m medic validate ARGS``; MEDIC_* of the caller's shell are not passed on."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MEDIC_")}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "medic", "validate", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_config_prints_one_ok_line() -> None:
    result = medic_validate("--config", str(SHIPPED_CONFIG), env={"MEDIC_API_TOKEN": "t"})
    assert result.returncode == EXIT_OK, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    assert "OK" in lines[0]
    assert lines[0].startswith(f"{SHIPPED_CONFIG}: OK: ")
    assert result.stderr == ""


def test_secrets_that_are_not_there_are_warnings_with_their_line(tmp_path: Path) -> None:
    (tmp_path / "playbooks").mkdir()
    write(tmp_path / "secrets" / "token", "s3cret\n")
    config = write(
        tmp_path / "config.yaml",
        "api: {listen: 127.0.0.1:8321, token_file: secrets/token}\n"
        "playbooks_dir: playbooks\n"
        "services:\n"
        "  db:\n"
        "    check: {type: postgres, dsn_env: MEDIC_TEST_UNSET_DSN}\n"
        "  other:\n"
        "    check: {type: postgres, dsn_file: secrets/missing-dsn}\n"
        "notifications:\n"
        "  webhooks:\n"
        "    - {name: ops, url: 'http://127.0.0.1:9/', secret_env: HOME}\n",
    )
    result = medic_validate("--config", str(config))
    assert result.returncode == EXIT_OK, result.stderr
    assert result.stdout.startswith(f"{config}: OK: ")
    assert result.stderr.splitlines() == [
        f"{config}:5: services.db.check.dsn_env: warning: the environment variable"
        " MEDIC_TEST_UNSET_DSN is not set here",
        f"{config}:7: services.other.check.dsn_file: warning:"
        f" {tmp_path / 'secrets' / 'missing-dsn'} is not a readable file here",
    ]


def test_valid_config_summary_counts(tmp_path: Path) -> None:
    (tmp_path / "playbooks").mkdir()
    config = write(
        tmp_path / "config.yaml",
        "playbooks_dir: playbooks\n"
        "services:\n"
        "  cache: {check: {type: tcp, port: 6379}}\n"
        "  web: {check: {type: http, url: 'http://127.0.0.1:8080/'}}\n",
    )
    result = medic_validate("--config", str(config))
    assert result.returncode == EXIT_OK, result.stderr
    assert result.stdout == f"{config}: OK: 2 services, 0 workflows, 0 playbooks, 0 webhooks\n"


def test_invalid_config_prints_every_error_and_exits_1() -> None:
    fixture = FIXTURES / "many_errors.yaml"
    result = medic_validate("--config", str(fixture))
    assert result.returncode == EXIT_INVALID, result.stdout + result.stderr
    assert result.stdout == ""
    expected = expected_lines(fixture)
    assert len(expected) > 1
    *errors, total = result.stderr.splitlines()
    assert errors == expected
    assert all(line.startswith(f"{fixture}:") for line in errors)
    assert total == f"{len(expected)} error(s) in {fixture}"


def test_errors_in_playbooks_name_the_playbook_file() -> None:
    fixture = FIXTURES / "broken_playbooks.yaml"
    result = medic_validate("--config", str(fixture))
    assert result.returncode == EXIT_INVALID
    errors = result.stderr.splitlines()[:-1]
    assert errors == expected_lines(fixture)
    assert all(line.startswith(f"{FIXTURES / 'playbooks_broken'}/") for line in errors)


def test_missing_file_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = medic_validate("--config", str(missing))
    assert result.returncode == EXIT_UNREADABLE
    assert result.stdout == ""
    assert "no such file" in result.stderr
    assert str(missing) in result.stderr


def test_broken_yaml_exits_2_with_the_line(tmp_path: Path) -> None:
    config = write(
        tmp_path / "config.yaml",
        "services:\n  web:\n    check: {type: http\n    interval: 5s\n",
    )
    result = medic_validate("--config", str(config))
    assert result.returncode == EXIT_UNREADABLE
    assert result.stdout == ""
    assert "not valid YAML" in result.stderr
    assert f"{config}:4: " in result.stderr


def test_top_level_list_exits_2(tmp_path: Path) -> None:
    config = write(tmp_path / "config.yaml", "- web\n- cache\n")
    result = medic_validate("--config", str(config))
    assert result.returncode == EXIT_UNREADABLE
    assert "top level must be a mapping" in result.stderr


def test_medic_config_env_is_used_without_config(tmp_path: Path) -> None:
    fixture = FIXTURES / "typo_service_key.yaml"
    result = medic_validate(cwd=tmp_path, env={"MEDIC_CONFIG": str(fixture)})
    assert result.returncode == EXIT_INVALID
    assert result.stderr.splitlines()[:-1] == expected_lines(fixture)

    result = medic_validate(cwd=tmp_path, env={"MEDIC_CONFIG": str(SHIPPED_CONFIG)})
    assert result.returncode == EXIT_OK, result.stderr
    assert result.stdout.startswith(f"{SHIPPED_CONFIG}: OK: ")


def test_config_option_beats_medic_config_env(tmp_path: Path) -> None:
    result = medic_validate(
        "--config",
        str(SHIPPED_CONFIG),
        cwd=tmp_path,
        env={"MEDIC_CONFIG": str(tmp_path / "nope.yaml")},
    )
    assert result.returncode == EXIT_OK, result.stderr
    assert result.stdout.startswith(f"{SHIPPED_CONFIG}: OK: ")


def test_relative_config_path_is_taken_from_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "etc" / "playbooks").mkdir(parents=True)
    write(tmp_path / "etc" / "medic.yaml", "playbooks_dir: playbooks\n")
    result = medic_validate("--config", "etc/medic.yaml", cwd=tmp_path)
    assert result.returncode == EXIT_OK, result.stderr
    assert result.stdout.startswith(f"{tmp_path / 'etc' / 'medic.yaml'}: OK: ")


def test_a_sleep_longer_than_its_timeout_is_an_error_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "playbooks").mkdir()
    write(
        tmp_path / "playbooks" / "pause.yaml",
        "steps:\n  - {action: sleep, duration: 2m, timeout: 30s}\n",
    )
    config = write(
        tmp_path / "config.yaml",
        "playbooks_dir: playbooks\n"
        "workflows:\n"
        "  slow:\n"
        "    steps:\n"
        "      - {name: nap, action: sleep, duration: 130s, timeout: 60s}\n",
    )
    bounded = write(
        tmp_path / "bounded.yaml",
        "workflows:\n"
        "  bounded:\n"
        "    timeout: 10\n"
        "    steps:\n"
        "      - {name: nap, action: sleep, duration: 11}\n",
    )

    result = medic_validate("--config", str(config))
    second = medic_validate("--config", str(bounded))

    assert result.returncode == EXIT_INVALID, result.stdout + result.stderr
    out = result.stdout + result.stderr
    assert (
        f"{config}:5: workflows.slow.steps[0]: the sleep (130s) is longer than the step's"
        " timeout (60s)"
    ) in out
    assert f"{tmp_path / 'playbooks' / 'pause.yaml'}:2: steps[0]: the sleep (120s)" in out
    assert second.returncode == EXIT_INVALID, second.stdout + second.stderr
    assert (
        f"{bounded}:5: workflows.bounded.steps[0].duration: the sleep (11s) is longer than the"
        " workflow's timeout (10s)"
    ) in second.stdout + second.stderr

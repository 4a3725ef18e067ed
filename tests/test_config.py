"""Loading the config and the playbooks: the schema, defaults, paths, secrets,
and every error reported as ``FILE:LINE: dotted.path: message``.

Broken configs live in ``tests/fixtures/configs/NAME.yaml``, each with its
exact error lines in ``NAME.expected`` (one per line). In those files
``{dir}`` stands for the fixtures' absolute folder, and the lists that grow
with every plugin are placeholders: ``{check_types}``, ``{actions}``,
``{check_keys:TYPE}`` (a check's option keys) and ``{action_keys:NAME}``.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import BaseModel

import medic
from medic.config.load import load_config
from medic.config.models import LoadedConfig
from medic.config.types import parse_duration
from medic.core.errors import ConfigFileError, ConfigInvalid
from medic.heal.actions import ACTION_TYPES
from medic.watch.checks import CHECK_TYPES

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "configs"
SHIPPED_CONFIGS = [
    REPO_ROOT / "control-plane" / "config.yaml",
    *sorted((REPO_ROOT / "control-plane" / "examples").glob("*.y*ml")),
]
SHIPPED_PLAYBOOKS_DIR = REPO_ROOT / "recovery_playbooks"
SHIPPED_PLAYBOOKS = sorted(SHIPPED_PLAYBOOKS_DIR.glob("*.y*ml"))


def _keys(model: type[BaseModel]) -> str:
    return ", ".join(sorted(model.model_fields))


def expected_lines(fixture: Path) -> list[str]:
    """The ``.expected`` file of ``fixture`` with its placeholders filled in."""
    expected = fixture.with_suffix(".expected")
    assert expected.is_file(), f"{fixture.name} has no {expected.name} with its error lines"
    text = expected.read_text(encoding="utf-8")
    text = text.replace("{dir}", str(FIXTURES))
    text = text.replace("{check_types}", ", ".join(sorted(CHECK_TYPES)))
    text = text.replace("{actions}", ", ".join(sorted(ACTION_TYPES)))
    text = re.sub(r"\{check_keys:(\w+)\}", lambda m: _keys(CHECK_TYPES[m[1]].options_model), text)
    text = re.sub(r"\{action_keys:(\w+)\}", lambda m: _keys(ACTION_TYPES[m[1]].options_model), text)
    return [line for line in text.splitlines() if line.strip()]


def reported(path: Path) -> list[str]:
    """Every error ``load_config`` reports for ``path``, as printed."""
    with pytest.raises(ConfigInvalid) as caught:
        load_config(path)
    return [str(issue) for issue in caught.value.issues]


def write_config(folder: Path, body: str, name: str = "config.yaml") -> Path:
    """Write ``body`` (dedented; its first line is line 1) into ``folder``.

    Unless it names its own, ``playbooks_dir: playbooks`` (an empty folder
    made here) is appended, so the body's line numbers stay as written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    body = textwrap.dedent(body).lstrip("\n")
    if "playbooks_dir:" not in body:
        (folder / "playbooks").mkdir(exist_ok=True)
        body += "playbooks_dir: playbooks\n"
    path = folder / name
    path.write_text(body, encoding="utf-8")
    return path


def load(folder: Path, body: str) -> LoadedConfig:
    return load_config(write_config(folder, body))


# ---------------------------------------------------------------------------
# Broken configs: every error, exactly, in line order
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("fixture", sorted(FIXTURES.glob("*.yaml")), ids=lambda p: p.stem)
def test_broken_config_reports_every_error_with_file_and_line(fixture: Path) -> None:
    assert reported(fixture) == expected_lines(fixture)


def test_fixtures_cover_the_broken_configs() -> None:
    """Guards against a fixture folder that silently shrinks to nothing."""
    assert len(list(FIXTURES.glob("*.yaml"))) >= 18


def test_errors_name_yaml_paths_not_the_schemas_union_members(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        """
        workflows:
          backup:
            steps:
              - {name: dump, action: run_command, command: [pg_dump, {port: 5432}]}
        """,
    )
    issues = reported(path)
    expected = f"{path}:4: workflows.backup.steps[0].command[1]: Input should be a valid string"
    assert expected in issues
    assert not [i for i in issues if "list[" in i or ".str:" in i], issues


# ---------------------------------------------------------------------------
# Durations
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1.5s", 1.5),
        ("2d", 172800.0),
        ("45", 45.0),
        ("10", 10.0),
        ("2.5", 2.5),
    ],
)
def test_duration_forms(tmp_path: Path, written: str, seconds: float) -> None:
    loaded = load(
        tmp_path,
        f"""
        services:
          web:
            check: {{type: tcp, port: 80}}
            interval: {written}
        """,
    )
    assert loaded.services["web"].interval_s == seconds


@pytest.mark.parametrize("key", ["interval", "timeout"])
def test_a_zero_interval_or_timeout_is_refused(tmp_path: Path, key: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"services:\n  web:\n    check: {{type: tcp, port: 80}}\n    {key}: 0\n")
    with pytest.raises(ConfigInvalid) as caught:
        load_config(path)
    assert [str(i) for i in caught.value.issues] == [
        f"{path}:4: services.web.{key}: Input should be greater than 0"
    ]


@pytest.mark.parametrize("written", ["-1s", "5 parsecs", "true", "-1", "10 s s", "1w", ".nan"])
def test_bad_durations_are_errors_at_their_line(tmp_path: Path, written: str) -> None:
    path = write_config(
        tmp_path,
        f"""
        services:
          web:
            check: {{type: tcp, port: 80}}
            interval: {written}
        """,
    )
    [issue] = reported(path)
    assert issue.startswith(f"{path}:4: services.web.interval: "), issue
    assert "duration" in issue


@pytest.mark.parametrize(
    ("value", "seconds"), [("500ms", 0.5), ("30s", 30.0), ("5m", 300.0), (7, 7.0), (0.25, 0.25)]
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["-1s", "5 parsecs", True, False, -1, None, "", math.inf])
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


# ---------------------------------------------------------------------------
# Defaults from monitoring:
# ---------------------------------------------------------------------------
def test_services_inherit_monitoring_defaults(tmp_path: Path) -> None:
    loaded = load(
        tmp_path,
        """
        monitoring:
          health_check_interval: 7s
          timeout: 4s
          failure_threshold: 5
          success_threshold: 2
          start_period: 20s
          recovery: {max_attempts: 9, window: 1h}
        services:
          plain:
            check: {type: tcp, port: 80}
          own:
            check: {type: tcp, port: 81}
            interval: 3s
            failure_threshold: 1
            success_threshold: 4
            start_period: 0s
        """,
    )
    plain, own = loaded.services["plain"], loaded.services["own"]
    assert (plain.interval_s, plain.failure_threshold, plain.success_threshold) == (7.0, 5, 2)
    assert plain.start_period_s == 20.0
    assert (own.interval_s, own.failure_threshold, own.success_threshold) == (3.0, 1, 4)
    assert own.start_period_s == 0.0
    assert plain.policy.max_attempts == own.policy.max_attempts == 9
    assert plain.policy.window == 3600.0


def test_timeout_check_beats_service_beats_monitoring(tmp_path: Path) -> None:
    loaded = load(
        tmp_path,
        """
        monitoring: {timeout: 4s}
        services:
          inherits:
            check: {type: tcp, port: 80}
          service_level:
            check: {type: tcp, port: 80}
            timeout: 2s
          check_level:
            check: {type: tcp, port: 80, timeout: 500ms}
            timeout: 2s
        """,
    )
    timeouts = {name: spec.timeout_s for name, spec in loaded.services.items()}
    assert timeouts == {"inherits": 4.0, "service_level": 2.0, "check_level": 0.5}


def test_defaults_without_a_monitoring_section(tmp_path: Path) -> None:
    loaded = load(tmp_path, "services:\n  web:\n    check: {type: tcp, port: 80}\n")
    web = loaded.services["web"]
    assert (web.interval_s, web.timeout_s, web.failure_threshold, web.success_threshold) == (
        10.0,
        5.0,
        3,
        1,
    )
    assert web.policy.max_attempts == 3
    assert loaded.model.api.listen == "127.0.0.1:8321"


def test_disabled_service_is_validated_but_not_watched(tmp_path: Path) -> None:
    loaded = load(
        tmp_path,
        """
        services:
          web:
            check: {type: tcp, port: 80}
          old:
            check: {type: tcp, port: 81}
            enabled: false
        """,
    )
    assert list(loaded.services) == ["web"]
    assert "old" in loaded.model.services


def test_sections_left_empty_are_the_defaults(tmp_path: Path) -> None:
    loaded = load(
        tmp_path,
        """
        monitoring:
        services:
          # web: {check: {type: tcp, port: 80}}
        workflows:
        """,
    )
    assert loaded.services == {}
    assert loaded.model.monitoring.health_check_interval == 10.0


# ---------------------------------------------------------------------------
# Paths relative to the config file
# ---------------------------------------------------------------------------
def test_relative_paths_are_relative_to_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_dir = tmp_path / "etc" / "medic"
    (tmp_path / "etc" / "shared-playbooks").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)  # somewhere else than the config's folder
    loaded = load(
        config_dir,
        """
        daemon: {state_dir: ../../state}
        playbooks_dir: ../shared-playbooks
        api: {token_file: creds/api-token}
        services:
          api:
            check: {type: http, url: "http://127.0.0.1:8090/health"}
            process: {command: [python3, -m, http.server], cwd: app, pidfile: run/api.pid}
        notifications:
          webhooks:
            - {name: ops, url: "https://hooks.example.com/x", secret_file: creds/hook}
        """,
    )
    model = loaded.model
    assert loaded.state_dir == tmp_path / "state"
    assert model.playbooks_dir == tmp_path / "etc" / "shared-playbooks"
    assert model.api.token_file == config_dir / "creds" / "api-token"
    process = loaded.services["api"].process
    assert process is not None
    assert (process.cwd, process.pidfile) == (config_dir / "app", config_dir / "run" / "api.pid")
    assert model.notifications.webhooks[0].secret_file == config_dir / "creds" / "hook"


def test_absolute_paths_are_kept(tmp_path: Path) -> None:
    loaded = load(
        tmp_path,
        """
        daemon: {state_dir: /var/lib/medic}
        services:
          api:
            check: {type: http, url: "http://127.0.0.1:8090/health"}
            process: {command: [python3], cwd: /srv/api}
        """,
    )
    assert loaded.state_dir == Path("/var/lib/medic")
    process = loaded.services["api"].process
    assert process is not None
    assert process.cwd == Path("/srv/api")


def test_state_dir_override_beats_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path / "etc", "daemon: {state_dir: state}\n")
    assert load_config(path).state_dir == tmp_path / "etc" / "state"
    assert load_config(path, state_dir="/var/lib/medic").state_dir == Path("/var/lib/medic")
    monkeypatch.chdir(tmp_path)
    # Like `medic run --state-dir here`: relative to where the command runs.
    assert load_config(path, state_dir="here").state_dir == tmp_path / "here"


# ---------------------------------------------------------------------------
# Secrets: only the names of environment variables and files
# ---------------------------------------------------------------------------
def test_secret_env_and_file_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDIC_API_TOKEN", raising=False)
    loaded = load(
        tmp_path,
        """
        api: {token_env: MEDIC_API_TOKEN, token_file: credentials/token}
        notifications:
          webhooks:
            - name: ops
              url: https://hooks.example.com/medic
              secret_env: MEDIC_WEBHOOK_SECRET
            - name: audit
              url: https://audit.example.com/medic
              secret_file: /run/credentials/medic.service/audit
        """,
    )
    api = loaded.model.api
    assert api.token_env == "MEDIC_API_TOKEN"
    assert api.token_file == tmp_path / "credentials" / "token"
    ops, audit = loaded.model.notifications.webhooks
    assert ops.secret_env == "MEDIC_WEBHOOK_SECRET"
    assert audit.secret_file == Path("/run/credentials/medic.service/audit")


# ---------------------------------------------------------------------------
# The shipped files
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("path", SHIPPED_CONFIGS, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_shipped_config_is_valid(path: Path) -> None:
    loaded = load_config(path)
    assert loaded.path == path.resolve()
    assert loaded.summary().startswith(f"{path.resolve()}: OK: ")


@pytest.fixture(scope="module")
def shipped_playbooks(tmp_path_factory: pytest.TempPathFactory) -> LoadedConfig:
    folder = tmp_path_factory.mktemp("shipped-playbooks")
    return load(folder, f"playbooks_dir: {SHIPPED_PLAYBOOKS_DIR}\n")


def test_every_shipped_playbook_loads(shipped_playbooks: LoadedConfig) -> None:
    assert SHIPPED_PLAYBOOKS, f"no playbooks in {SHIPPED_PLAYBOOKS_DIR}"
    # Stems, not paths, sorted: 'memory-leak.yaml' sorts after 'memory-leak-container.yaml'.
    assert sorted(shipped_playbooks.playbooks) == sorted(p.stem for p in SHIPPED_PLAYBOOKS)


@pytest.mark.parametrize("path", SHIPPED_PLAYBOOKS, ids=lambda p: p.name)
def test_shipped_playbook_is_described(shipped_playbooks: LoadedConfig, path: Path) -> None:
    playbook = shipped_playbooks.playbooks[path.stem]
    assert playbook.description.strip(), f"{path.name} needs a description"
    assert playbook.steps


# ---------------------------------------------------------------------------
# Files that are not configs
# ---------------------------------------------------------------------------
def test_top_level_list_is_a_file_error(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("- web\n- database\n", encoding="utf-8")
    with pytest.raises(ConfigFileError, match="top level must be a mapping"):
        load_config(path)


def test_missing_file_is_a_file_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="no such file"):
        load_config(tmp_path / "nope.yaml")


def test_broken_yaml_is_a_file_error_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("services:\n  web:\n    check: {type: tcp\n", encoding="utf-8")
    with pytest.raises(ConfigFileError, match=rf"^{re.escape(str(path))}:4: not valid YAML"):
        load_config(path)


def test_empty_file_is_valid_with_no_services(tmp_path: Path) -> None:
    path = tmp_path / "alone" / "config.yaml"  # ../recovery_playbooks: none there
    path.parent.mkdir()
    path.write_text("# nothing configured yet\n", encoding="utf-8")
    loaded = load_config(path)
    assert loaded.services == {}
    assert loaded.summary() == f"{path}: OK: 0 services, 0 workflows, 0 playbooks, 0 webhooks"


def test_an_explicit_playbooks_dir_must_exist(tmp_path: Path) -> None:
    path = write_config(tmp_path, "playbooks_dir: missing\n")
    assert reported(path) == [f"{path}:1: playbooks_dir: no such directory: {tmp_path / 'missing'}"]


def test_playbooks_are_checked_even_when_the_config_breaks_the_schema(tmp_path: Path) -> None:
    (tmp_path / "pb").mkdir()
    playbook = tmp_path / "pb" / "fix.yaml"
    playbook.write_text("description: d\nsteps:\n  - {action: restat_container}\n")
    path = tmp_path / "config.yaml"
    path.write_text("playbooks_dir: pb\nmonitoring: {intervall: 5s}\n")
    with pytest.raises(ConfigInvalid) as caught:
        load_config(path)
    found = [(i.file, i.line, i.dotted_path) for i in caught.value.issues]
    assert (str(path), 2, "monitoring.intervall") in found
    assert (str(playbook), 3, "steps[0]") in found


def test_schema_and_reference_errors_are_reported_in_one_run(tmp_path: Path) -> None:
    (tmp_path / "pb").mkdir()
    (tmp_path / "pb" / "restart-container.yaml").write_text(
        "description: d\nsteps:\n  - {action: notify}\n"
    )
    path = write_config(
        tmp_path,
        "playbooks_dir: pb\n"
        "monitoring: {intervall: 5s}\n"
        "services:\n"
        "  web:\n"
        "    check: {type: http, url: 'not a url'}\n"
        "  api:\n"
        "    check: {type: tcp, port: 8080}\n"
        "    depends_on: [web, databse]\n"
        "    recovery: {service_crash: restart-contaner}\n"
        "workflows:\n"
        "  nightly:\n"
        "    schedule: {cron: '61 * * * *'}\n"
        "    steps: [{name: a, action: sleep, duration: 1s, depends_on: [b]}]\n"
        "  broken:\n"
        "    steps: [{name: a, action: nope}]\n",
    )
    lines = reported(path)
    paths = [line.split(": ")[1] for line in lines]
    # Schema errors...
    assert "monitoring.intervall" in paths
    assert "services.web.check.url" in paths
    assert any(p.startswith("workflows.broken.steps[0]") for p in paths)
    # ...and, in the same run, the references among what did validate; the
    # broken service 'web' still counts as a service others may depend on.
    assert "services.api.depends_on[1]" in paths
    assert "services.api.depends_on[0]" not in paths
    assert "services.api.recovery.service_crash" in paths
    assert "workflows.nightly.schedule.cron" in paths
    assert "workflows.nightly.steps[0].depends_on[0]" in paths
    assert len(lines) == len(set(lines))


def test_argv_numbers_are_taken_as_strings_and_supervised_programs_get_a_start_grace(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "services:\n"
        "  db:\n"
        "    check: {type: tcp, port: 5432}\n"
        "    start_command: [pg_ctlcluster, 15, main, start]\n"
        "  api:\n"
        "    check: {type: tcp, port: 8090}\n"
        "    process: {command: [python3, -m, http.server, 8090]}\n"
        "  api2:\n"
        "    check: {type: tcp, port: 8091}\n"
        "    process: {command: [python3, -m, http.server, 8091]}\n"
        "    start_period: 0s\n"
    )
    loaded = load_config(path)
    assert loaded.services["db"].start_command == ("pg_ctlcluster", "15", "main", "start")
    api = loaded.services["api"]
    assert api.process is not None and api.process.command == [
        "python3",
        "-m",
        "http.server",
        "8090",
    ]
    assert api.start_period_s == 5.0
    assert loaded.services["db"].start_period_s == 0.0
    assert loaded.services["api2"].start_period_s == 0.0


def test_webhook_events_must_be_events_medic_publishes(tmp_path: Path) -> None:
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "page.yaml").write_text(
        "steps:\n  - {action: notify, event: ops.page}\n"
    )
    path = write_config(
        tmp_path,
        """
        notifications:
          webhooks:
            - name: ops
              url: http://127.0.0.1:9/hook
              events:
                - service.unhealty
                - recovry.*
                - "*"
                - recovery.*
                - circuit.opened
                - ops.page
                - ops.*
        """,
    )
    assert reported(path) == [
        f"{path}:6: notifications.webhooks[0].events[0]: unknown event 'service.unhealty'"
        " (did you mean 'service.unhealthy'?)",
        f"{path}:7: notifications.webhooks[0].events[1]: no event matches 'recovry.*'"
        " (did you mean 'recovery.*'?)",
    ]


def test_every_event_the_daemon_publishes_is_known_to_webhook_validation() -> None:
    from medic.core.bus import PUBLISHED_EVENTS

    source = "\n".join(p.read_text() for p in (REPO_ROOT / "daemon" / "medic").rglob("*.py"))
    published = set(re.findall(r'publish\(\s*"([a-z_]+\.[a-z_.]+)"', source))
    # The values of a mapping from outcome to event name (log event names are
    # no such values: they stand first in a log call).
    published |= set(re.findall(r': "(workflow\.[a-z_]+)",?\n', source))
    published |= set(re.findall(r'"event": "([a-z_]+\.[a-z_.]+)"', source))
    assert len(published) > 15, published
    assert published <= PUBLISHED_EVENTS, published - PUBLISHED_EVENTS


def test_config_imports_no_plugin() -> None:
    """The plugins' option models live in config: loading a config imports no stage above it."""
    code = (
        "import sys, medic.config.load\n"
        "above = sorted(m for m in sys.modules if m.startswith('medic.')"
        " and not m.startswith(('medic.config', 'medic.core')))\n"
        "print(above)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(medic.__file__).parent.parent)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.strip() == "[]"

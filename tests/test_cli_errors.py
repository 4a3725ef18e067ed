"""What the ``medic`` CLI says when things are not simple: a long operation
outlasting a wait, names that need URL-encoding, a closed pipe, a state dir
that cannot be made, ``--url`` in api.listen's form, no config to find the
daemon by, and control endpoints without a token."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from medic.cli import client
from medic.cli import main as cli
from tests.helpers import REPO_ROOT, free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess
from tests.test_cli_client import TOKEN, run_cli

ENV = {"MEDIC_API_TOKEN": TOKEN}


@pytest.fixture
def slow_daemon(medic_daemon: DaemonFactory) -> DaemonProcess:
    """``slow`` sleeps 3 s; the services' names need URL-encoding."""
    refused = free_port()
    config = f"""
api: {{listen: 127.0.0.1:{free_port()}, token_env: MEDIC_API_TOKEN}}
monitoring: {{health_check_interval: 1h}}
services:
  "my web":
    check: {{type: tcp, host: 127.0.0.1, port: {refused}}}
  "a/b":
    check: {{type: tcp, host: 127.0.0.1, port: {refused}}}
  "50%":
    check: {{type: tcp, host: 127.0.0.1, port: {refused}}}
workflows:
  slow:
    steps:
      - {{name: nap, action: sleep, duration: 3s, timeout: 20s}}
  "two words":
    steps:
      - {{name: greet, action: run_command, command: [echo, hi]}}
"""
    return medic_daemon(config, env=ENV)


def test_a_run_longer_than_the_read_limit_is_waited_for(
    slow_daemon: DaemonProcess, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The read limit (status, list) is far shorter than the run: `workflows
    # run` must not use it, nor call a busy daemon "not running".
    monkeypatch.setattr(client, "READ_TIMEOUT_S", 0.5)
    monkeypatch.setenv("MEDIC_API_TOKEN", TOKEN)
    code = cli.main(["workflows", "run", "slow", "--url", slow_daemon.url])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "of slow: succeeded" in out
    assert "not running" not in err


def test_a_wait_limit_says_what_goes_on_and_how_to_follow_it(slow_daemon: DaemonProcess) -> None:
    args = ["workflows", "run", "slow", "--timeout", "1s", "--url", slow_daemon.url]
    result = run_cli(*args, env=ENV)
    assert result.returncode == 4, result.stderr
    assert "not running" not in result.stderr
    assert "workflow slow is still running in the daemon" in result.stderr
    assert "the CLI stopped waiting after 1s" in result.stderr
    assert "`medic workflows list`" in result.stderr
    assert "Traceback" not in result.stderr

    def finished() -> bool:
        _, runs = slow_daemon.get("/api/v1/workflows/slow/runs")
        return bool(runs["runs"]) and runs["runs"][0]["outcome"] == "succeeded"

    wait_for(finished, 15, interval=0.2, message="the run the CLI left went on to succeed")


def test_a_bad_timeout_is_a_usage_error() -> None:
    result = run_cli("recover", "web", "--timeout", "soon")
    assert result.returncode == 2
    assert "invalid duration 'soon'" in result.stderr


@pytest.mark.parametrize("name", ["my web", "a/b", "50%"])
def test_service_names_that_need_encoding_are_reached(
    slow_daemon: DaemonProcess, name: str
) -> None:
    result = run_cli("check", name, "--url", slow_daemon.url, env=ENV)
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith(f"{name}: FAILING (service_crash)")
    assert "Traceback" not in result.stderr
    dry = run_cli("recover", name, "--dry-run", "--url", slow_daemon.url, env=ENV)
    assert "Traceback" not in dry.stderr
    assert f"of {name} with" in dry.stdout or "no playbook" in dry.stderr, dry


def test_workflow_names_that_need_encoding_are_reached(slow_daemon: DaemonProcess) -> None:
    result = run_cli("workflows", "run", "two words", "--url", slow_daemon.url, env=ENV)
    assert result.returncode == 0, result.stderr
    assert "of two words: succeeded" in result.stdout


def test_a_closed_pipe_ends_status_quietly(slow_daemon: DaemonProcess) -> None:
    """``medic status | head -1``: the reader is gone before the table is printed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "medic", "status", "--url", slow_daemon.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT / "daemon")},
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=30) == 141
    assert err == ""


def test_a_state_dir_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"api: {{listen: 127.0.0.1:{free_port()}}}\n")
    result = run_cli("run", "--config", str(config), "--state-dir", "/proc/nope")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "medic: not starting: cannot create the state directory /proc/nope:"
        " No such file or directory (daemon.state_dir or --state-dir)"
    ]


def test_a_state_dir_whose_database_cannot_be_opened_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"api: {{listen: 127.0.0.1:{free_port()}}}\n")
    state = tmp_path / "state"
    (state / "medic.db").mkdir(parents=True)  # not a file sqlite can open
    result = run_cli("run", "--config", str(config), "--state-dir", str(state))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"medic: not starting: cannot open {state / 'medic.db'}")


@pytest.mark.parametrize("form", ["{hostport}", "{url}/api/v1", "{url}/api/v1/", "{url}/"])
def test_url_may_be_host_port_or_end_in_api_v1(slow_daemon: DaemonProcess, form: str) -> None:
    url = form.format(hostport=slow_daemon.listen, url=slow_daemon.url)
    result = run_cli("workflows", "list", "--url", url)
    assert result.returncode == 0, result.stderr
    assert any(line.startswith("slow ") for line in result.stdout.splitlines())


def test_a_url_that_is_no_http_address_is_a_usage_error() -> None:
    result = run_cli("status", "--url", "ftp://host/x")
    assert result.returncode == 2
    assert "--url must be like http://127.0.0.1:8321 or 127.0.0.1:8321" in result.stderr


def test_without_a_config_the_fallback_address_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    result = run_cli("status", env={"MEDIC_CONFIG": str(missing)}, cwd=tmp_path)
    assert result.returncode == 3
    assert result.stderr.startswith(
        "medic: the medic daemon is not running at http://127.0.0.1:8321"
    )
    assert f"no config found at {missing}, tried 127.0.0.1:8321; use --url or --config" in (
        result.stderr
    )


def test_control_disabled_says_where_the_token_goes(
    medic_daemon: DaemonFactory, tmp_path: Path
) -> None:
    daemon = medic_daemon(f"api: {{listen: 127.0.0.1:{free_port()}, token_env: SOME_TOKEN}}\n")
    result = run_cli("workflows", "run", "x", "--url", daemon.url, env=ENV)
    assert result.returncode == 1
    hint = next(line for line in result.stderr.splitlines() if line.startswith("hint: "))
    assert "in the daemon's environment" in hint and "api.token_env" in hint
    assert "$MEDIC_API_TOKEN" in hint

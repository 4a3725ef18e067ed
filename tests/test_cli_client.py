"""``medic status|check|recover|workflows`` as an operator runs them: the real
command in a subprocess against a real daemon, reached by ``--url`` or by the
config's ``api.listen``, with the token from ``$MEDIC_API_TOKEN``; and a plain
"not running" (exit 3) when there is no daemon."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT, free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess

TOKEN = "cli-test-token"


def run_cli(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m medic ARGS`` with none of the caller's MEDIC_* variables."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MEDIC_")}
    clean["PYTHONPATH"] = str(REPO_ROOT / "daemon")
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "medic", *args],
        capture_output=True,
        text=True,
        env=clean,
        cwd=cwd or REPO_ROOT,
        timeout=60,
        check=False,
    )


@pytest.fixture
def daemon(medic_daemon: DaemonFactory, listening_port: int, tmp_path: Path) -> DaemonProcess:
    """``up`` is healthy; ``gone`` is down and was recovered once; ``hello`` ran once.
    The ``mark`` playbook (``up``'s recovery) touches ``marker``."""
    marker = tmp_path / "marker"
    playbooks = {
        "notify-gone": "failure_types: [service_crash]\nsteps:\n  - {action: notify}\n",
        "mark": f"steps:\n  - {{action: run_command, command: [touch, '{marker}']}}\n",
    }
    config = f"""
api: {{listen: 127.0.0.1:{free_port()}, token_env: MEDIC_API_TOKEN}}
monitoring:
  health_check_interval: 300ms
  failure_threshold: 1
  recovery: {{max_attempts: 1}}
playbooks_dir: playbooks
services:
  up:
    check: {{type: tcp, host: 127.0.0.1, port: {listening_port}}}
    recovery: {{service_crash: mark}}
  gone:
    check: {{type: tcp, host: 127.0.0.1, port: {free_port()}}}
workflows:
  hello:
    schedule: {{interval: 1h}}
    steps:
      - {{name: greet, action: run_command, command: [echo, hello from hello]}}
"""
    daemon = medic_daemon(config, env={"MEDIC_API_TOKEN": TOKEN}, playbooks=playbooks)
    assert daemon.post("/api/v1/workflows/hello/run", token=TOKEN)[0] == 200

    def settled() -> bool:
        _, recs = daemon.get("/api/v1/recoveries?service=gone")
        _, up = daemon.get("/api/v1/services/up")
        return (
            recs["total"] >= 1
            and recs["recoveries"][0]["outcome"] != "running"
            and (up["status"] == "healthy")
        )

    wait_for(settled, 15, interval=0.1, message="gone recovered once and up healthy")
    return daemon


def test_status_is_a_table_of_services_workflows_and_recoveries(daemon: DaemonProcess) -> None:
    result = run_cli("status", "--url", daemon.url)
    assert result.returncode == 3, result.stderr  # "gone" is not healthy
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("SERVICE"))
    assert header.split() == ["SERVICE", "STATUS", "FAILURE", "CIRCUIT", "UPTIME", "LAST", "CHECK"]
    up = next(line for line in lines if line.startswith("up "))
    assert up.split()[:4] == ["up", "healthy", "-", "closed"]
    assert "100.00%" in up
    gone = next(line for line in lines if line.startswith("gone "))
    assert gone.split()[:2] == ["gone", "unhealthy"] and "service_crash" in gone
    assert any(line.startswith("hello ") and " idle " in line for line in lines), lines
    recovery = next(line for line in lines if " gone " in f" {line} " and "notify-gone" in line)
    _, recs = daemon.get("/api/v1/recoveries?service=gone")
    assert "service_crash" in recovery and f" {recs['recoveries'][0]['outcome']} " in recovery


def test_status_json_is_the_api_status_document(daemon: DaemonProcess) -> None:
    result = run_cli("status", "--json", "--url", daemon.url)
    assert result.returncode == 3, result.stderr  # "gone" is not healthy
    data = json.loads(result.stdout)
    assert set(data) == set(daemon.get("/api/v1/status")[1])
    assert data["health_status"]["up"]["status"] == "healthy"
    assert data["health_status"]["gone"]["status"] != "healthy"
    assert list(data["workflows"]) == ["hello"]
    assert data["recovery_history"][0]["service"] == "gone"


def test_the_address_comes_from_the_config(daemon: DaemonProcess, tmp_path: Path) -> None:
    by_flag = run_cli("status", "--config", str(daemon.config_path))
    assert by_flag.returncode == 3, by_flag.stderr  # reached; "gone" is not healthy
    assert any(line.startswith("up ") for line in by_flag.stdout.splitlines())
    by_env = run_cli(
        "check", "up", env={"MEDIC_CONFIG": str(daemon.config_path), "MEDIC_API_TOKEN": TOKEN}
    )
    assert by_env.returncode == 0, by_env.stderr
    # --url wins over the config.
    elsewhere = f"http://127.0.0.1:{free_port()}"
    overridden = run_cli("status", "--config", str(daemon.config_path), "--url", elsewhere)
    assert overridden.returncode == 3 and elsewhere in overridden.stderr


def test_check_prints_the_verdict_and_exits_0_or_1(daemon: DaemonProcess) -> None:
    env = {"MEDIC_API_TOKEN": TOKEN}
    healthy = run_cli("check", "up", "--url", daemon.url, env=env)
    assert healthy.returncode == 0, healthy.stderr
    assert healthy.stdout.startswith("up: healthy")
    failing = run_cli("check", "gone", "--url", daemon.url, env=env)
    assert failing.returncode == 1, failing.stderr
    assert failing.stdout.startswith("gone: FAILING (service_crash)")
    assert "connection refused" in failing.stdout
    unknown = run_cli("check", "nope", "--url", daemon.url, env=env)
    assert unknown.returncode == 1
    assert "no service named 'nope'" in unknown.stderr


def test_recover_dry_run_prints_the_steps_and_touches_nothing(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    env = {"MEDIC_API_TOKEN": TOKEN}
    args = ["recover", "up", "--failure-type", "service_crash", "--url", daemon.url]
    dry = run_cli(*args, "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "with mark: dry_run" in dry.stdout
    step = next(line for line in dry.stdout.splitlines() if "run_command" in line)
    assert step.split()[:3] == ["steps", "run_command", "dry_run"]
    assert not (tmp_path / "marker").exists(), "a dry run touched the host"

    real = run_cli(*args, env=env)
    assert real.returncode == 0, real.stderr
    assert "with mark: succeeded" in real.stdout
    assert (tmp_path / "marker").exists()


def test_recover_without_the_right_token_says_so(daemon: DaemonProcess) -> None:
    missing = run_cli("recover", "up", "--dry-run", "--url", daemon.url)
    assert missing.returncode == 1
    assert "MEDIC_API_TOKEN is not set" in missing.stderr, missing.stderr
    wrong = run_cli("recover", "up", "--dry-run", "--url", daemon.url, env={"MEDIC_API_TOKEN": "x"})
    assert wrong.returncode == 1
    assert "MEDIC_API_TOKEN does not match" in wrong.stderr, wrong.stderr
    _, recs = daemon.get("/api/v1/recoveries?service=up")
    assert recs["total"] == 0


def test_control_disabled_is_explained(medic_daemon: DaemonFactory, listening_port: int) -> None:
    config = f"""
api: {{listen: 127.0.0.1:{free_port()}}}
services:
  up:
    check: {{type: tcp, port: {listening_port}}}
"""
    daemon = medic_daemon(config)
    result = run_cli("check", "up", "--url", daemon.url, env={"MEDIC_API_TOKEN": TOKEN})
    assert result.returncode == 1
    assert "control endpoints are disabled" in result.stderr


def test_workflows_list_run_start_stop(daemon: DaemonProcess) -> None:
    env = {"MEDIC_API_TOKEN": TOKEN}
    listed = run_cli("workflows", "list", "--url", daemon.url)
    assert listed.returncode == 0 and any(
        line.startswith("hello ") for line in listed.stdout.splitlines()
    )
    ran = run_cli("workflows", "run", "hello", "--url", daemon.url, env=env)
    assert ran.returncode == 0, ran.stderr
    assert "succeeded" in ran.stdout and "| hello from hello" in ran.stdout
    started = run_cli("workflows", "start", "hello", "--url", daemon.url, env=env)
    assert started.returncode == 0 and "schedule was not stopped" in started.stdout
    stopped = run_cli("workflows", "stop", "hello", "--url", daemon.url, env=env)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    runs = daemon.get("/api/v1/workflows/hello")[1]["run_count"]
    started = run_cli("workflows", "start", "hello", "--url", daemon.url, env=env)
    assert started.returncode == 0 and "schedule resumed; no run started" in started.stdout
    assert daemon.get("/api/v1/workflows/hello")[1]["run_count"] == runs  # resumed, not run
    assert daemon.get("/api/v1/workflows/hello")[1]["status"] != "stopped"
    started = run_cli("workflows", "start", "hello", "--run-now", "--url", daemon.url, env=env)
    assert started.returncode == 0 and "started run" in started.stdout
    unknown = run_cli("workflows", "run", "nope", "--url", daemon.url, env=env)
    assert unknown.returncode == 1 and "no workflow registered as 'nope'" in unknown.stderr


@pytest.mark.parametrize(
    "command",
    [["status"], ["status", "--json"], ["check", "web"], ["recover", "web"], ["workflows", "list"]],
)
def test_a_daemon_that_is_not_running_is_said_plainly(command: list[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run_cli(*command, "--url", url, env={"MEDIC_API_TOKEN": TOKEN})
    assert result.returncode == 3
    assert result.stdout == ""
    assert f"the medic daemon is not running at {url}" in result.stderr
    assert "Traceback" not in result.stderr


def test_reset_closes_an_open_circuit(daemon: DaemonProcess) -> None:
    def circuit() -> str:
        _, gone = daemon.get("/api/v1/services/gone")
        return str(gone["circuit"])

    wait_for(lambda: circuit() == "open", 15, message="gone's circuit opened (max_attempts: 1)")
    result = run_cli("reset", "gone", "--url", daemon.url, env={"MEDIC_API_TOKEN": TOKEN})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("gone: circuit closed, recovery attempts given back")
    _, audit = daemon.get("/api/v1/audit?kind=operator.reset")
    assert [entry["service"] for entry in audit["audit"]] == ["gone"]
    unknown = run_cli("reset", "nope", "--url", daemon.url, env={"MEDIC_API_TOKEN": TOKEN})
    assert unknown.returncode == 1 and "no service named 'nope'" in unknown.stderr


def test_approve_and_reject_decide_a_waiting_recovery(
    medic_daemon: DaemonFactory, tmp_path: Path
) -> None:
    flag, marker = tmp_path / "up", tmp_path / "fixed"
    playbooks = {
        "careful": "failure_types: [unhealthy_response]\napproval: required\n"
        f"steps:\n  - {{action: run_command, command: [touch, '{marker}']}}\n"
    }
    config = f"""
api: {{listen: 127.0.0.1:{free_port()}, token_env: MEDIC_API_TOKEN}}
monitoring: {{health_check_interval: 200ms, failure_threshold: 1}}
playbooks_dir: playbooks
services:
  app:
    check: {{type: command, command: [test, -e, "{flag}"]}}
"""
    env = {"MEDIC_API_TOKEN": TOKEN}
    daemon = medic_daemon(config, env=env, playbooks=playbooks)

    def waiting() -> int | None:
        _, recs = daemon.get("/api/v1/recoveries?service=app")
        pending = [r["id"] for r in recs["recoveries"] if r["outcome"] == "waiting_approval"]
        return pending[0] if pending else None

    first = wait_for(waiting, 15, message="a recovery waits for approval")
    rejected = run_cli("reject", str(first), "--url", daemon.url, env=env)
    assert rejected.returncode == 0, rejected.stderr
    assert rejected.stdout.strip() == f"recovery {first} of app with careful: rejected"
    assert not marker.exists()
    # The operator said no: held, not asked again at the next backoff.
    _, app = daemon.get("/api/v1/services/app")
    assert app["status"] == "held", app
    assert f"an operator rejected recovery {first}" in app["held_reason"]
    _, audit = daemon.get("/api/v1/audit?kind=recovery.held&service=app")
    assert [e["data"]["reason"] for e in audit["audit"]][:1] == ["rejected"]

    assert run_cli("reset", "app", "--url", daemon.url, env=env).returncode == 0
    second = wait_for(waiting, 30, message="after the reset, the next attempt waits for approval")
    approved = run_cli("approve", str(second), "--url", daemon.url, env=env)
    assert approved.returncode == 0, approved.stderr
    assert f"recovery {second} of app with careful:" in approved.stdout
    wait_for(marker.exists, 10, message="the approved playbook ran")
    again = run_cli("approve", str(second), "--url", daemon.url, env=env)
    assert again.returncode == 1 and "not waiting for approval" in again.stderr

"""Workflows through the running daemon: the HTTP API, ``medic workflows`` on
the command line, ``/api/v1/status`` and a live reload on SIGHUP."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.helpers import REPO_ROOT, free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess

TOKEN = "t"
DEADLINE_S = 10.0


def config(port: int, workflows: str) -> str:
    return f"""
api: {{listen: 127.0.0.1:{port}, token_env: MEDIC_API_TOKEN}}
workflows:
{workflows}
"""


def standard_workflows(mark: str) -> str:
    """``quick`` (two echo steps), ``slow`` (sleep 2, its processes carry ``mark``),
    ``failing`` (exit 3) and ``ticking`` (scheduled every 10 minutes)."""
    return f"""
  quick:
    steps:
      - {{name: hello, action: run_command, command: [echo, hello]}}
      - {{name: world, action: run_command, command: [echo, world], depends_on: [hello]}}
  slow:
    steps:
      - {{name: nap, action: run_command, command: [sleep, "2"], env: {{MEDIC_TEST_MARK: {mark}}}}}
  failing:
    steps:
      - {{name: boom, action: run_command, command: [sh, -c, "echo broken; exit 3"]}}
  ticking:
    schedule: {{interval: 10m}}
    steps:
      - {{name: noop, action: run_command, command: ["true"]}}
"""


@pytest.fixture
def mark() -> str:
    return secrets.token_hex(8)


@pytest.fixture
def daemon(medic_daemon: DaemonFactory, mark: str) -> DaemonProcess:
    return medic_daemon(
        config(free_port(), standard_workflows(mark)), env={"MEDIC_API_TOKEN": TOKEN}
    )


def marked_processes(mark: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("MEDIC_TEST_MARK") == mark and proc.status() != "zombie":
                found.append(proc)
        except psutil.Error:
            continue
    return found


def workflow(daemon: DaemonProcess, workflow_id: str) -> dict[str, Any]:
    code, body = daemon.get(f"/api/v1/workflows/{workflow_id}")
    assert code == 200, body
    return dict(body)


def status_of(daemon: DaemonProcess, workflow_id: str) -> dict[str, Any]:
    code, body = daemon.get("/api/v1/status")
    assert code == 200, body
    return dict(body["workflows"][workflow_id])


def latest_run(daemon: DaemonProcess, workflow_id: str) -> dict[str, Any]:
    code, body = daemon.get(f"/api/v1/workflows/{workflow_id}/runs")
    assert code == 200, body
    return dict(body["runs"][0])


def medic_cli(*args: str, token: str | None = TOKEN) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIC_")}
    env["PYTHONPATH"] = str(REPO_ROOT / "daemon")
    if token is not None:
        env["MEDIC_API_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "medic", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=60,
    )


# the API -------------------------------------------------------------------------


def test_list_and_get_show_status_schedule_and_counts(daemon: DaemonProcess) -> None:
    code, body = daemon.get("/api/v1/workflows")
    assert code == 200
    listed = {w["id"]: w for w in body["workflows"]}
    assert sorted(listed) == ["failing", "quick", "slow", "ticking"]
    for item in listed.values():
        assert item["status"] == "idle"
        assert (item["run_count"], item["error_count"], item["last_run"]) == (0, 0, None)
    assert listed["quick"]["next_run_at"] is None  # manual only
    assert listed["ticking"]["next_run_at"] is not None

    one = workflow(daemon, "quick")
    assert [s["name"] for s in one["config"]["steps"]] == ["hello", "world"]


def test_run_waits_and_returns_the_record_with_every_step(daemon: DaemonProcess) -> None:
    code, run = daemon.post("/api/v1/workflows/quick/run", token=TOKEN)
    assert code == 200, run
    assert run["workflow"] == "quick" and run["outcome"] == "succeeded"
    steps = {s["name"]: s for s in run["steps"]}
    assert steps["hello"]["output"] == "hello\n" and steps["world"]["output"] == "world\n"
    assert all(s["outcome"] == "succeeded" and s["attempts"] == 1 for s in steps.values())

    assert latest_run(daemon, "quick")["id"] == run["id"]

    code, failed = daemon.post("/api/v1/workflows/failing/run", token=TOKEN)
    assert code == 200
    assert failed["outcome"] == "failed"
    boom = failed["steps"][0]
    assert (boom["outcome"], boom["attempts"], boom["output"]) == ("failed", 1, "broken\n")
    assert "exit 3" in boom["detail"]


def test_start_conflicts_while_running_and_stop_cancels_the_run(
    daemon: DaemonProcess, mark: str
) -> None:
    code, started = daemon.post("/api/v1/workflows/slow/start", token=TOKEN)
    assert code == 202, started
    assert isinstance(started["run_id"], int)
    wait_for(lambda: marked_processes(mark), DEADLINE_S, message="the sleep step never started")
    assert workflow(daemon, "slow")["status"] == "running"
    assert status_of(daemon, "slow")["status"] == "running"

    for action in ("start", "run"):
        code, body = daemon.post(f"/api/v1/workflows/slow/{action}", token=TOKEN)
        assert code == 409, body
        assert body["error"]["code"] == "WORKFLOW_ALREADY_RUNNING"

    code, stopped = daemon.post("/api/v1/workflows/slow/stop", token=TOKEN)
    assert code == 200 and stopped["cancelled_run"] is True
    run = latest_run(daemon, "slow")
    assert run["id"] == started["run_id"]
    assert run["outcome"] == "cancelled"
    assert run["steps"][0]["outcome"] == "cancelled"
    assert not marked_processes(mark), "stop left the step's sleep running"
    assert workflow(daemon, "slow")["status"] == "stopped"


def test_unknown_workflows_are_404_and_control_needs_the_token(daemon: DaemonProcess) -> None:
    assert daemon.get("/api/v1/workflows/nope")[0] == 404
    assert daemon.get("/api/v1/workflows/nope/runs")[0] == 404
    for action in ("start", "stop", "run"):
        code, body = daemon.post(f"/api/v1/workflows/nope/{action}", token=TOKEN)
        assert code == 404, (action, body)
        assert body["error"]["code"] == "WORKFLOW_NOT_FOUND"
        assert "nope" in body["error"]["message"]
    assert daemon.post("/api/v1/workflows/quick/start")[0] == 401
    assert workflow(daemon, "quick")["run_count"] == 0


def test_status_counts_runs_and_errors(daemon: DaemonProcess) -> None:
    assert status_of(daemon, "failing") == {
        "status": "idle",
        "last_run": None,
        "run_count": 0,
        "error_count": 0,
        "next_run_at": None,
    }
    daemon.post("/api/v1/workflows/quick/run", token=TOKEN)
    daemon.post("/api/v1/workflows/failing/run", token=TOKEN)
    daemon.post("/api/v1/workflows/failing/run", token=TOKEN)

    quick, failing = status_of(daemon, "quick"), status_of(daemon, "failing")
    assert (quick["run_count"], quick["error_count"]) == (1, 0)
    assert (failing["run_count"], failing["error_count"]) == (2, 2)
    assert failing["last_run"] == latest_run(daemon, "failing")["started_at"]
    assert failing["status"] == "idle"


# the CLI ---------------------------------------------------------------------------


def test_cli_lists_and_runs_workflows_with_exit_codes(daemon: DaemonProcess) -> None:
    listed = medic_cli("workflows", "list", "--url", daemon.url)
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split()[:2] == ["WORKFLOW", "STATUS"]
    assert sorted(row.split()[0] for row in rows) == ["failing", "quick", "slow", "ticking"]

    ok = medic_cli("workflows", "run", "quick", "--url", daemon.url)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("run ") and "of quick: succeeded" in ok.stdout
    assert "| hello" in ok.stdout and "| world" in ok.stdout

    bad = medic_cli("workflows", "run", "failing", "--url", daemon.url)
    assert bad.returncode == 1
    assert "of failing: failed" in bad.stdout and "| broken" in bad.stdout

    unknown = medic_cli("workflows", "run", "nope", "--url", daemon.url)
    assert unknown.returncode == 1
    assert "no workflow registered as 'nope'" in unknown.stderr

    no_token = medic_cli("workflows", "start", "quick", "--url", daemon.url, token=None)
    assert no_token.returncode == 1
    assert "MEDIC_API_TOKEN" in no_token.stderr


def test_cli_says_plainly_when_the_daemon_is_not_running() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = medic_cli("workflows", "start", "quick", "--url", url)
    assert result.returncode == 3
    assert f"the medic daemon is not running at {url}" in result.stderr
    assert "Traceback" not in result.stderr


# reload ----------------------------------------------------------------------------


def ticking(name: str, interval: str) -> str:
    return f"""
  {name}:
    schedule: {{interval: {interval}}}
    steps:
      - {{name: noop, action: run_command, command: ["true"]}}
"""


def test_sighup_adds_and_removes_a_workflow_live(medic_daemon: DaemonFactory) -> None:
    port = free_port()
    manual_a = """
  a:
    steps:
      - {name: noop, action: run_command, command: ["true"]}
"""
    daemon = medic_daemon(
        config(port, manual_a + ticking("c", "300ms")), env={"MEDIC_API_TOKEN": TOKEN}
    )
    assert daemon.post("/api/v1/workflows/a/run", token=TOKEN)[1]["outcome"] == "succeeded"
    wait_for(lambda: workflow(daemon, "c")["run_count"] >= 2, DEADLINE_S, message="c runs")
    first_c_run = min(run["id"] for run in daemon.get("/api/v1/workflows/c/runs")[1]["runs"])

    daemon.write_config(config(port, ticking("b", "300ms") + ticking("c", "300ms")))
    c_before = workflow(daemon, "c")["run_count"]
    daemon.send_signal(signal.SIGHUP)

    reloaded = daemon.wait_for_log(event="config.reloaded")
    assert reloaded["workflows"] == {"added": ["b"], "removed": ["a"], "changed": []}
    wait_for(lambda: workflow(daemon, "b")["run_count"] >= 2, DEADLINE_S, message="b runs")
    code, body = daemon.get("/api/v1/workflows/a")
    assert code == 404 and body["error"]["code"] == "WORKFLOW_NOT_FOUND"
    c_after = wait_for(
        lambda: (n := workflow(daemon, "c")["run_count"]) > c_before and n,
        DEADLINE_S,
        message="c keeps running after the reload",
    )
    assert c_after > c_before
    runs = daemon.get("/api/v1/workflows/c/runs?limit=1000")[1]["runs"]
    assert min(run["id"] for run in runs) == first_c_run  # its history is kept
    assert sorted(daemon.get("/api/v1/status")[1]["workflows"]) == ["b", "c"]


# where commands run ----------------------------------------------------------------


def test_commands_run_in_the_config_files_folder_whatever_the_daemons_cwd(
    medic_daemon: DaemonFactory, tmp_path: Path
) -> None:
    hello = tmp_path / "hello.sh"
    hello.write_text("#!/bin/sh\necho hello from $(pwd)\n")
    hello.chmod(0o755)
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "extract.py").write_text(
        "import os\nprint('extracted in', os.getcwd())\n"
    )
    workflows = """
  here:
    type: sync
    timeout: 300
    steps:
      - {name: hello, action: run_command, command: [./hello.sh]}
      - {name: extract, action: run_command, command: [python3, scripts/extract.py]}
      - {name: nested, action: run_command, command: [pwd], cwd: scripts}
"""
    # Started from / as systemd does, not from the config's folder.
    daemon = medic_daemon(
        config(free_port(), workflows), env={"MEDIC_API_TOKEN": TOKEN}, cwd=Path("/")
    )

    code, run = daemon.post("/api/v1/workflows/here/run", token=TOKEN)

    folder = tmp_path.resolve()
    assert code == 200, run
    steps = {s["name"]: s for s in run["steps"]}
    assert run["outcome"] == "succeeded", steps
    assert steps["hello"]["output"] == f"hello from {folder}\n"
    assert steps["extract"]["output"] == f"extracted in {folder}\n"
    assert steps["nested"]["output"] == f"{folder / 'scripts'}\n"


def test_a_playbook_command_without_cwd_runs_in_the_playbooks_folder(tmp_path: Path) -> None:
    from medic.config.load import load_config

    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "cleanup.yaml").write_text(
        "steps:\n  - {action: run_command, command: [./cleanup.sh]}\n"
    )
    (tmp_path / "config.yaml").write_text("playbooks_dir: playbooks\n")

    loaded = load_config(tmp_path / "config.yaml")

    step = loaded.playbooks["cleanup"].steps[0]
    assert getattr(step, "cwd", None) == (tmp_path / "playbooks").resolve()


# an operator's stop ------------------------------------------------------------------


def test_a_stopped_workflow_stays_stopped_across_a_daemon_restart(
    medic_daemon: DaemonFactory, mark: str
) -> None:
    text = config(free_port(), standard_workflows(mark))
    env = {"MEDIC_API_TOKEN": TOKEN}
    first = medic_daemon(text, env=env)
    code, stopped = first.post("/api/v1/workflows/ticking/stop", token=TOKEN)
    assert code == 200, stopped
    assert first.stop() == 0

    second = medic_daemon(text, env=env)

    for view in (workflow(second, "ticking"), status_of(second, "ticking")):
        assert view["status"] == "stopped", view
        assert view["next_run_at"] is None, view
    assert workflow(second, "quick")["status"] == "idle"  # only the stopped one

    code, started = second.post("/api/v1/workflows/ticking/start", token=TOKEN)
    assert code == 202, started
    assert workflow(second, "ticking")["next_run_at"] is not None
    assert second.stop() == 0

    third = medic_daemon(text, env=env)

    resumed = workflow(third, "ticking")
    assert resumed["status"] in ("idle", "running"), resumed
    assert resumed["next_run_at"] is not None

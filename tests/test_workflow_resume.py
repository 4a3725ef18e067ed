"""Workflow runs that go on where they stopped: after ``kill -9`` of the daemon
in the middle of a step (``resumable: true``), and by hand (``POST
/api/v1/workflows/{id}/runs/{run}/resume``, ``medic workflows resume RUN``).

Each step appends its name to a file, so a step run twice shows twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.helpers import free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess
from tests.test_workflows_api import TOKEN, medic_cli


def _config(port: int, workflows: str) -> str:
    return f"""
api: {{listen: 127.0.0.1:{port}, token_env: MEDIC_API_TOKEN}}
workflows:
{workflows}
"""


def _etl(trail: Path, go: Path, *, resumable_steps: bool) -> str:
    """``etl``: three sync steps; ``load`` waits for ``go`` before it ends."""
    flag = "resumable: true" if resumable_steps else "resumable: false"
    wait = (
        f"echo load-start >> {trail}; while [ ! -e {go} ]; do sleep 0.1; done; echo load >> {trail}"
    )
    return f"""
  etl:
    type: sync
    timeout: 120
    steps:
      - {{name: extract, action: run_command, command: [sh, -c, "echo extract >> {trail}"], {flag}}}
      - {{name: load, action: run_command, command: [sh, -c, "{wait}"], {flag}}}
      - {{name: report, action: run_command, command: [sh, -c, "echo report >> {trail}"], {flag}}}
"""


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def _run(daemon: DaemonProcess, workflow: str, run_id: int) -> dict[str, Any]:
    code, body = daemon.get(f"/api/v1/workflows/{workflow}/runs?limit=50")
    assert code == 200, body
    return next(run for run in body["runs"] if run["id"] == run_id)


def _ended(daemon: DaemonProcess, workflow: str, run_id: int) -> dict[str, Any]:
    return wait_for(
        lambda: (run := _run(daemon, workflow, run_id))["outcome"] != "running" and run,
        30,
        message=f"run {run_id} of {workflow} did not end",
    )


def _start(daemon: DaemonProcess, workflow: str) -> int:
    code, body = daemon.post(f"/api/v1/workflows/{workflow}/start", token=TOKEN)
    assert code == 202, body
    return int(body["run_id"])


def test_a_run_cut_off_by_kill_9_goes_on_at_its_first_unfinished_step(
    medic_daemon: DaemonFactory, tmp_path: Path
) -> None:
    trail, go = tmp_path / "trail", tmp_path / "go"
    config = _config(free_port(), _etl(trail, go, resumable_steps=True))
    daemon = medic_daemon(config, env={"MEDIC_API_TOKEN": TOKEN})
    run_id = _start(daemon, "etl")
    wait_for(lambda: "load-start" in _lines(trail), 15, message="step load did not start")

    daemon.kill()  # SIGKILL in the middle of step 2 of 3
    again = medic_daemon(config, env={"MEDIC_API_TOKEN": TOKEN})
    # (Only now: the step command the killed daemon left has been ended at start.)
    wait_for(lambda: _lines(trail).count("load-start") == 2, 15, message="load did not rerun")
    go.touch()

    run = _ended(again, "etl", run_id)
    assert run["outcome"] == "succeeded", run
    assert _lines(trail) == ["extract", "load-start", "load-start", "load", "report"]
    latest = {step["name"]: step["outcome"] for step in run["steps"]}
    assert latest == {"extract": "succeeded", "load": "succeeded", "report": "succeeded"}
    assert [s["name"] for s in run["steps"]].count("extract") == 1, "extract ran again"
    resumed = again.wait_for_log(event="workflow.resumed")
    assert (resumed["run_id"], resumed["from_step"]) == (run_id, "load")
    _code, body = again.get("/api/v1/workflows/etl/runs")
    assert [r["id"] for r in body["runs"]] == [run_id], "the resumed run is the same run"


def test_a_cut_off_run_whose_steps_are_not_resumable_stays_interrupted(
    medic_daemon: DaemonFactory, tmp_path: Path
) -> None:
    trail, go = tmp_path / "trail", tmp_path / "go"
    config = _config(free_port(), _etl(trail, go, resumable_steps=False))
    daemon = medic_daemon(config, env={"MEDIC_API_TOKEN": TOKEN})
    run_id = _start(daemon, "etl")
    wait_for(lambda: "load-start" in _lines(trail), 15, message="step load did not start")
    daemon.kill()
    again = medic_daemon(config, env={"MEDIC_API_TOKEN": TOKEN})

    again.wait_for_log(event="workflow.not_resumed", run_id=run_id)
    assert _run(again, "etl", run_id)["outcome"] == "interrupted"
    assert _lines(trail) == ["extract", "load-start"]

    # An operator may still resume it by hand.
    go.touch()
    code, body = again.post(f"/api/v1/workflows/etl/runs/{run_id}/resume", token=TOKEN)
    assert (code, body["run_id"]) == (202, run_id), body
    assert _ended(again, "etl", run_id)["outcome"] == "succeeded"
    assert _lines(trail) == ["extract", "load-start", "load-start", "load", "report"]


def test_an_operator_resumes_a_failed_run_from_the_step_that_failed(
    medic_daemon: DaemonFactory, tmp_path: Path
) -> None:
    trail, mode, ok = tmp_path / "trail", tmp_path / "mode", tmp_path / "ok"
    mode.write_text("fail")
    load = (
        f"echo load >> {trail}; [ $(cat {mode}) = fail ] && exit 1;"
        f" while [ ! -e {ok} ]; do sleep 0.1; done; exit 0"
    )
    workflows = f"""
  nightly:
    steps:
      - {{name: extract, action: run_command, command: [sh, -c, "echo extract >> {trail}"]}}
      - {{name: load, action: run_command, command: [sh, -c, "{load}"], depends_on: [extract]}}
      - {{name: report, action: run_command, command: [sh, -c, "echo report >> {trail}"],
         depends_on: [load]}}
"""
    daemon = medic_daemon(_config(free_port(), workflows), env={"MEDIC_API_TOKEN": TOKEN})
    code, failed = daemon.post("/api/v1/workflows/nightly/run", token=TOKEN)
    assert (code, failed["outcome"]) == (200, "failed"), failed
    run_id = failed["id"]
    assert _lines(trail) == ["extract", "load"]

    assert daemon.post("/api/v1/workflows/nightly/runs/999999/resume", token=TOKEN)[0] == 404
    code, body = daemon.post(f"/api/v1/workflows/nope/runs/{run_id}/resume", token=TOKEN)
    assert (code, body["error"]["code"]) == (404, "WORKFLOW_NOT_FOUND")
    assert daemon.post(f"/api/v1/workflows/nightly/runs/{run_id}/resume")[0] == 401

    mode.write_text("wait")
    done = medic_cli("workflows", "resume", str(run_id), "--url", daemon.url)
    assert done.returncode == 0, done.stderr
    assert f"resumed run {run_id}" in done.stdout
    wait_for(lambda: _lines(trail) == ["extract", "load", "load"], 15, message="load did not rerun")
    code, body = daemon.post(f"/api/v1/workflows/nightly/runs/{run_id}/resume", token=TOKEN)
    assert (code, body["error"]["code"]) == (409, "WORKFLOW_ALREADY_RUNNING"), body

    ok.touch()
    run = _ended(daemon, "nightly", run_id)
    assert run["outcome"] == "succeeded", run
    assert _lines(trail) == ["extract", "load", "load", "report"]
    code, body = daemon.post(f"/api/v1/workflows/nightly/runs/{run_id}/resume", token=TOKEN)
    assert (code, body["error"]["code"]) == (409, "RUN_NOT_RESUMABLE"), body
    refused = medic_cli("workflows", "resume", str(run_id), "--url", daemon.url)
    assert refused.returncode == 1
    assert "has outcome succeeded; only a failed" in refused.stderr

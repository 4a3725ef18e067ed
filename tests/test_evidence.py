"""Evidence before acting, on the real engine: before a playbook restarts a
container, medic keeps what the restart loses (exit code, OOMKilled, the
HEALTHCHECK runs) and the last lines of its log, with the recovery."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from medic.heal.evidence import gather_evidence
from medic.host.docker import DockerGateway
from medic.tell.webhooks import encode_body
from tests.helpers import free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess
from tests.plugins.docker import ContainerFactory
from tests.plugins.inprocess import BusWatch, OrchestratorFactory

REPO_PLAYBOOKS = Path(__file__).resolve().parent.parent / "recovery_playbooks"


def _config(container: str) -> str:
    return f"""
api: {{listen: 127.0.0.1:{free_port()}}}
monitoring:
  health_check_interval: 30s
  failure_threshold: 1
  recovery: {{max_attempts: 3, window: 10m, backoff: {{initial: 200ms}}}}
playbooks_dir: {REPO_PLAYBOOKS}
services:
  app:
    check: {{type: container}}
    container: {container}
"""


def _first_evidence(daemon: DaemonProcess) -> tuple[dict[str, Any], dict[str, Any]]:
    """The first recovery with its evidence, by ``GET /api/v1/recoveries/{id}``; and the list's."""

    def kept() -> dict[str, Any] | None:
        _, body = daemon.get("/api/v1/recoveries")
        done = [r for r in body["recoveries"] if r["outcome"] != "running" and r["evidence"]]
        return done[-1] if done else None

    listed = wait_for(kept, 30, interval=0.1, message="a finished recovery with its evidence")
    status, one = daemon.get(f"/api/v1/recoveries/{listed['id']}")
    assert status == 200
    return one, listed


def test_a_killed_containers_last_lines_and_exit_code_are_kept(
    medic_daemon: DaemonFactory, container_factory: ContainerFactory
) -> None:
    # 80 lines on stdout, one on stderr, one with a DSN password; each start
    # prints them again, so lines printed after the restart would show.
    script = (
        "for i in $(seq 1 80); do echo line-$i; done; sleep 0.3; echo to-stderr >&2; sleep 0.3;"
        " echo 'db at postgresql://app:hunter2@db/app';"
        " echo started-$RANDOM$RANDOM; exec sleep 3600"
    )
    app = container_factory(name="app", command=script, publish=False)
    wait_for(lambda: "started-" in app.logs(), 10, message="the container printed its lines")
    first_start = next(ln for ln in app.logs().splitlines() if ln.startswith("started-"))
    daemon = medic_daemon(_config(app.name))
    wait_for(
        lambda: daemon.get("/api/v1/services/app")[1]["status"] == "healthy",
        15,
        message="app healthy",
    )
    app.container.kill()
    record, listed = _first_evidence(daemon)
    assert record["outcome"] == "succeeded", record
    evidence = record["evidence"]
    assert listed["evidence"] == evidence
    assert evidence["container"] == app.name
    assert (evidence["exit_code"], evidence["oom_killed"]) == (137, False)
    assert evidence["status"] == "exited"
    lines = evidence["log"].splitlines()
    assert evidence["log_lines"] == len(lines) == 50
    # The last 50 lines before the restart, both streams (the pauses around
    # the stderr line keep Docker's two pipes in order), and none after it.
    assert lines[-3:] == ["to-stderr", "db at postgresql://app:***@db/app", first_start]
    assert lines[0] == "line-34" and "line-33" not in lines
    assert [ln for ln in lines if ln.startswith("started-")] == [first_start]
    assert "hunter2" not in evidence["log"]
    assert evidence["notes"] == []
    assert app.status == "running"
    wait_for(lambda: app.logs().count("started-") == 2, 10, message="the restart printed again")
    # The log line that says so, and the bounded wait before the restart.
    kept = daemon.find_logs(event="recovery.evidence_kept")
    assert kept and kept[0]["exit_code"] == 137


def test_an_out_of_memory_kill_is_kept_as_oom_killed(
    medic_daemon: DaemonFactory, container_factory: ContainerFactory
) -> None:
    # The first run eats memory past its 16 MiB limit; the restarted one sleeps.
    script = (
        "if [ -e /tmp/ate ]; then exec sleep 3600; fi; touch /tmp/ate;"
        " echo about-to-eat; sleep 2; tail /dev/zero"
    )
    app = container_factory(
        name="hog", command=script, publish=False, mem_limit="16m", memswap_limit="16m"
    )
    daemon = medic_daemon(_config(app.name))
    record, _ = _first_evidence(daemon)
    evidence = record["evidence"]
    assert (evidence["exit_code"], evidence["oom_killed"]) == (137, True), evidence
    assert "about-to-eat" in evidence["log"].splitlines()
    assert record["outcome"] == "succeeded", record


async def test_recovery_events_and_webhooks_carry_the_evidence_cut_short(
    orchestrator: OrchestratorFactory, container_factory: ContainerFactory
) -> None:
    script = "for i in $(seq 1 60); do echo line-$i; done; exec sleep 3600"
    app = container_factory(name="told", command=script, publish=False)
    wait_for(lambda: "line-60" in app.logs(), 10, message="the container printed its lines")
    orch = await orchestrator(_config(app.name))
    events = BusWatch(orch.bus, after=0)
    await events.next("service.state", service="app", new="healthy")
    app.container.kill()
    done = await events.next("recovery.succeeded", service="app")
    told = done.data["evidence"]
    assert (told["exit_code"], told["oom_killed"], told["log_lines"]) == (137, False, 50)
    assert told["log_tail"].splitlines() == [f"line-{i}" for i in range(51, 61)]
    # A webhook's body is the event's data as JSON.
    assert json.loads(encode_body(done, "host"))["data"]["evidence"] == told


async def test_a_slow_engine_delays_the_first_step_by_200_ms_at_most(
    tmp_path: Path,
) -> None:
    # An "engine" that answers its version at once and everything else after 2 s.
    async def version(_request: web.Request) -> web.Response:
        return web.json_response({"ApiVersion": "1.41", "Version": "20.10"})

    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(2.0)
        return web.json_response({"State": {"Status": "exited", "ExitCode": 1}})

    app = web.Application()
    app.router.add_get("/version", version)
    app.router.add_get("/v1.41/version", version)
    app.router.add_route("*", "/{tail:.*}", slow)
    async with TestServer(app, host="127.0.0.1") as server:
        gateway = DockerGateway(f"tcp://127.0.0.1:{server.port}")
        try:
            await gateway.ping()  # the client is made (and asks the version) before timing
            t0 = time.monotonic()
            keeping = await gather_evidence(gateway, "slow", ["secret"])
            waited = time.monotonic() - t0
            assert waited < 0.3, f"the first step waited {waited:.3f}s"
            evidence = await keeping
            assert evidence.exit_code is None and evidence.oom_killed is None
            assert any("within 200 ms" in note for note in evidence.notes), evidence.notes
        finally:
            gateway.close()

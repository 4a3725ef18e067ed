"""End to end with host processes: medic starts a service's ``process:``,
notices its exit at once, restarts it through the restart-process playbook,
tells a memory leak from a spike, follows reloads and stops its children
when it stops."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import psutil

from medic.config.load import load_config
from medic.core.vocabulary import FailureType
from medic.heal.playbooks import choose_playbook
from tests.helpers import free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess
from tests.plugins.http import http_request
from tests.processes import PYTHON, Spawner, alive, http_server, listeners, program

REPO_PLAYBOOKS = Path(__file__).resolve().parent.parent / "recovery_playbooks"
TOKEN = "medic-test-token"
SLEEPER = [PYTHON, "-c", "import time; time.sleep(300)"]
MIB = 1_048_576

TELL_ONLY = """
description: tell the operators, touch nothing
failure_types: [service_crash]
steps:
  - {action: notify, event: recovery.notify, message: "${service} is gone"}
"""


def config(
    api_port: int,
    services: str,
    *,
    interval: str = "30s",
    playbooks_dir: str | Path = REPO_PLAYBOOKS,
) -> str:
    return f"""
api: {{listen: 127.0.0.1:{api_port}, token_env: MEDIC_API_TOKEN}}
monitoring:
  health_check_interval: {interval}
  timeout: 1s
  failure_threshold: 2
  recovery: {{max_attempts: 5, window: 10m, backoff: {{initial: 200ms}}}}
playbooks_dir: {playbooks_dir}
services:
{services}
"""


def web_service(port: int, name: str = "web") -> str:
    return f"""
  {name}:
    check: {{type: http, url: "http://127.0.0.1:{port}/", expect_status: [200], timeout: 1s}}
    process:
      command: {json.dumps(http_server(port))}
      stop_timeout: 2s
"""


def start(medic_daemon: DaemonFactory, config_yaml: str, **kwargs: Any) -> DaemonProcess:
    return medic_daemon(config_yaml, env={"MEDIC_API_TOKEN": TOKEN}, **kwargs)


def service(daemon: DaemonProcess, name: str) -> dict[str, Any]:
    status, body = daemon.get(f"/api/v1/services/{name}")
    assert status == 200, body
    return dict(body)


def process_pid(daemon: DaemonProcess, name: str) -> int | None:
    pid = service(daemon, name)["process"]["pid"]
    return int(pid) if pid is not None else None


def wait_pid(daemon: DaemonProcess, name: str, spawn: Spawner, timeout: float = 10) -> int:
    pid = wait_for(lambda: process_pid(daemon, name), timeout, message=f"{name}'s process runs")
    return spawn.watch(pid)


def answers_200(port: int) -> bool:
    try:
        status, _ = http_request(f"http://127.0.0.1:{port}/", timeout=1.0)
    except OSError:
        return False
    return status == 200


def check_now(daemon: DaemonProcess, name: str) -> None:
    status, body = daemon.post(f"/api/v1/services/{name}/check", token=TOKEN)
    assert status == 200, body


def wait_status(daemon: DaemonProcess, name: str, status: str, timeout: float = 15) -> None:
    wait_for(
        lambda: service(daemon, name)["status"] == status,
        timeout,
        interval=0.05,
        message=f"{name} {status}",
    )


def finished_recovery(daemon: DaemonProcess, name: str, timeout: float = 30) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        _, body = daemon.get(f"/api/v1/recoveries?service={name}")
        finished = [r for r in body["recoveries"] if r["outcome"] not in ("running", "pending")]
        return finished[-1] if finished else None

    return wait_for(done, timeout, interval=0.1, message=f"a finished recovery of {name}")


def recoveries(daemon: DaemonProcess, name: str) -> list[dict[str, Any]]:
    _, body = daemon.get(f"/api/v1/recoveries?service={name}")
    return list(body["recoveries"])


def test_the_shipped_playbooks_fit_process_and_container_services(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"""
playbooks_dir: {REPO_PLAYBOOKS}
services:
  api:
    check: {{type: http, url: "http://127.0.0.1:1/"}}
    process: {{command: [/bin/true]}}
  web:
    check: {{type: process, cmdline: httpd}}
    container: web
  adopted:
    check: {{type: process}}
    process: {{pidfile: /run/x.pid}}
"""
    )
    loaded = load_config(path)

    def chosen(service: str, failure: FailureType) -> str:
        return choose_playbook(loaded.services[service], failure, loaded.playbooks).name

    assert chosen("api", FailureType.SERVICE_CRASH) == "restart-process"
    assert chosen("api", FailureType.CONNECTION_TIMEOUT) == "restart-process"
    assert chosen("api", FailureType.MEMORY_LEAK) == "memory-leak"
    assert chosen("adopted", FailureType.SERVICE_CRASH) == "restart-process"
    assert chosen("web", FailureType.SERVICE_CRASH) == "restart-container"
    assert chosen("web", FailureType.MEMORY_LEAK) == "memory-leak-container"


def test_a_killed_process_is_restarted_from_its_command(
    medic_daemon: DaemonFactory, spawn: Spawner
) -> None:
    port = free_port()
    # A 30 s check interval: only the child's exit can explain a heal within seconds.
    daemon = start(medic_daemon, config(free_port(), web_service(port)))
    old = wait_pid(daemon, "web", spawn)
    wait_for(lambda: answers_200(port), 10, message="the server answers")
    check_now(daemon, "web")
    wait_status(daemon, "web", "healthy")

    killed_at = time.monotonic()
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: answers_200(port), 15, interval=0.01, message="the server answers again")
    healed_s = time.monotonic() - killed_at
    new = spawn.watch(listeners(port)[0])

    assert new != old and not alive(old)
    assert healed_s < 5.0, f"healed after {healed_s:.2f}s"
    record = finished_recovery(daemon, "web")
    assert (record["failure_type"], record["playbook"], record["outcome"]) == (
        "service_crash",
        "restart-process",
        "succeeded",
    ), record
    assert [s["action"] for s in record["steps"]] == ["restart_process", "wait_healthy"]
    assert record["steps"][0]["detail"] == f"was not running; started pid {new}"
    assert process_pid(daemon, "web") == new
    unhealthy = daemon.wait_for_log(event="service.unhealthy", service="web")
    assert "the process is gone (killed by SIGKILL)" in unhealthy["detail"]
    exited = daemon.wait_for_log(event="process.exited", service="web")
    assert exited["returncode"] == -signal.SIGKILL

    # The output of both runs lands in the state dir, with a line per start.
    log_text = (daemon.state_dir / "logs" / "web.log").read_text()
    assert log_text.count("--- medic: starting") == 2
    assert re.search(r'"GET / HTTP/1\.[01]" 200', log_text), log_text[-2000:]


def test_an_adopted_process_exit_is_seen_through_its_pidfd(
    medic_daemon: DaemonFactory, spawn: Spawner, tmp_path: Path
) -> None:
    proc = spawn(SLEEPER)
    pidfile = tmp_path / "other.pid"
    pidfile.write_text(f"{proc.pid}\n")
    services = f"""
  other:
    check: {{type: process}}
    process: {{pidfile: {pidfile}}}
"""
    daemon = start(
        medic_daemon,
        config(free_port(), services, playbooks_dir="playbooks"),
        playbooks={"tell-only": TELL_ONLY},
    )
    wait_status(daemon, "other", "healthy")
    info = service(daemon, "other")["process"]
    assert (info["pid"], info["owned"]) == (proc.pid, False)

    # Not reaped here until medic has noticed: a zombie must count as gone.
    killed_at = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    exited = daemon.wait_for_log(timeout=5, event="process.exited", service="other")
    wait_status(daemon, "other", "unhealthy", timeout=5)
    noticed_s = time.monotonic() - killed_at
    assert exited["returncode"] is None
    assert noticed_s < 3.0, f"noticed after {noticed_s:.2f}s with a 30 s check interval"
    body = service(daemon, "other")
    assert body["failure_type"] == "service_crash"
    assert "not running" in body["last_check"]["detail"]
    record = finished_recovery(daemon, "other")
    assert record["playbook"] == "tell-only"
    assert proc.wait(timeout=5) == -signal.SIGTERM


def test_a_steady_leak_is_classified_and_restarted(
    medic_daemon: DaemonFactory, spawn: Spawner
) -> None:
    services = f"""
  leaky:
    check: {{type: process, leak_window: 2s, leak_min_samples: 5}}
    interval: 250ms
    process: {{command: {json.dumps(program("leak.py", 300))}, stop_timeout: 2s}}
"""
    daemon = start(medic_daemon, config(free_port(), services))
    old = wait_pid(daemon, "leaky", spawn)
    record = finished_recovery(daemon, "leaky", timeout=30)
    assert (record["failure_type"], record["playbook"], record["outcome"]) == (
        "memory_leak",
        "memory-leak",
        "succeeded",
    ), record
    assert [s["action"] for s in record["steps"]] == ["notify", "restart_process", "wait_healthy"]
    facts = record["facts"]
    # The program keeps 2 MiB more every 100 ms: about 20 MiB/s.
    assert 8 * MIB < facts["growth_bytes_per_s"] < 40 * MIB, facts
    assert facts["samples"] >= 5
    assert facts["leak_window_s"] == 2.0
    assert facts["rss_bytes"] > 20 * MIB
    assert "grew steadily" in facts["detail"]
    notice = daemon.wait_for_log(notify_event="service.memory_leak")
    assert f"resident {facts['rss_mib']} MiB" in notice["notice"]
    assert "${" not in notice["notice"], notice["notice"]
    assert not alive(old)
    assert record["steps"][1]["detail"].startswith(f"stopped pid {old} with SIGTERM")
    new = wait_pid(daemon, "leaky", spawn)
    assert new != old


def test_a_single_spike_is_not_a_leak(medic_daemon: DaemonFactory, spawn: Spawner) -> None:
    services = f"""
  spiky:
    check: {{type: process, leak_window: 2s, leak_min_samples: 5}}
    interval: 250ms
    process: {{command: {json.dumps(program("spike.py", 2.0, 1.5))}}}
"""
    daemon = start(medic_daemon, config(free_port(), services))
    pid = wait_pid(daemon, "spiky", spawn)
    log_path = daemon.state_dir / "logs" / "spiky.log"

    def rss_seen_by_medic() -> float:
        detail = service(daemon, "spiky")["last_check"] or {}
        match = re.search(r"RSS ([\d.]+) MiB", detail.get("detail", ""))
        return float(match.group(1)) if match else 0.0

    # Evidence that medic's own check sampled the 100 MiB spike.
    wait_for(lambda: rss_seen_by_medic() > 100, 15, interval=0.05, message="medic saw the spike")
    wait_for(lambda: "\nfreed\n" in log_path.read_text(), 10, message="the spike is freed")
    # Watch 2.5 leak windows (20 checks) after the spike: no leak, no restart.
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        body = service(daemon, "spiky")
        assert body["status"] == "healthy", body
        assert recoveries(daemon, "spiky") == []
        time.sleep(0.1)
    assert rss_seen_by_medic() < 50
    assert process_pid(daemon, "spiky") == pid


def test_no_process_is_left_behind_after_sigterm(
    medic_daemon: DaemonFactory, spawn: Spawner
) -> None:
    port = free_port()
    services = (
        web_service(port)
        + """
  tree:
    check: {type: process}
    process: {command: [sh, -c, "sleep 1001 & sleep 1002 & wait"]}
"""
    )
    daemon = start(medic_daemon, config(free_port(), services))
    sessions = {wait_pid(daemon, "web", spawn), wait_pid(daemon, "tree", spawn)}
    wait_for(lambda: answers_200(port), 10, message="the server answers")
    assert len(in_sessions(sessions)) >= 4
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait() == 0
    wait_for(lambda: not in_sessions(sessions), 5, message="every child of medic is gone")
    assert daemon.find_logs(event="supervisor.stopping")


def in_sessions(sessions: set[int]) -> list[int]:
    """Live processes of the given sessions (zombies count as gone)."""
    found = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            sid = os.getsid(proc.info["pid"])
        except OSError:
            continue
        if sid in sessions and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc.info["pid"])
    return found


def test_a_restarted_medic_adopts_the_child_it_left(
    medic_daemon: DaemonFactory, spawn: Spawner
) -> None:
    port = free_port()
    config_yaml = config(free_port(), web_service(port))
    first = start(medic_daemon, config_yaml)
    pid = wait_pid(first, "web", spawn)
    wait_for(lambda: answers_200(port), 10, message="the server answers")
    first.kill()
    assert alive(pid), "the child lives in its own session and survives medic's kill -9"

    second = start(medic_daemon, config_yaml)
    assert process_pid(second, "web") == pid
    assert listeners(port) == [pid], "no second copy was started"
    adopted = second.wait_for_log(event="process.adopted", service="web")
    assert adopted["owned"] is True
    second.send_signal(signal.SIGTERM)
    assert second.wait() == 0
    wait_for(lambda: not alive(pid), 5, message="the adopted child is stopped with medic")


def test_reload_starts_stops_and_restarts_processes(
    medic_daemon: DaemonFactory, spawn: Spawner
) -> None:
    api_port = free_port()

    def services(b_arg: str, names: tuple[str, ...]) -> str:
        commands = {"a": SLEEPER, "b": [*SLEEPER, b_arg], "c": SLEEPER}
        return "".join(
            f"""
  {name}:
    check: {{type: process}}
    process: {{command: {json.dumps(commands[name])}}}
"""
            for name in names
        )

    daemon = start(medic_daemon, config(api_port, services("one", ("a", "b"))))
    a, b = wait_pid(daemon, "a", spawn), wait_pid(daemon, "b", spawn)
    daemon.write_config(config(api_port, services("two", ("b", "c"))))
    daemon.send_signal(signal.SIGHUP)
    reloaded = daemon.wait_for_log(event="config.reloaded")
    assert reloaded["processes"] == {"added": ["c"], "removed": ["a"], "changed": ["b"]}
    c = wait_pid(daemon, "c", spawn)
    new_b = wait_pid(daemon, "b", spawn)
    assert not alive(a) and not alive(b)
    assert alive(c) and alive(new_b) and new_b != b
    assert psutil.Process(new_b).cmdline()[-1] == "two"

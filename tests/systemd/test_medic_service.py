"""medic as a real systemd service: installed with scripts/install.sh into a
container that boots systemd v252 (Debian bookworm) as PID 1.

Start gating on READY=1, reload over SIGHUP, the watchdog restarting a
stalled event loop with the history kept, a clean stop, units healed with
restart_unit while systemd's own Restart= is off, an operator's stop left
alone, a start limit reported and cleared, JSON log lines in the journal, the
sandbox keeping what medic needs, and the systemd-analyze security score.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.helpers import wait_for
from tests.systemd.conftest import API_TOKEN, ARTIFACTS, FILES, wait_active
from tests.systemd.host import REPO_ROOT, SystemdHost, journal_json_lines

pytestmark = [pytest.mark.systemd, pytest.mark.timeout(400)]

EXEC_START = (
    "ExecStart=/opt/medic/venv/bin/medic run --config /etc/medic/config.yaml"
    " --state-dir /var/lib/medic --log-format json"
)
HEAL_TIMEOUT_S = 30.0
SECURITY_BOUND = 3.0


def service(host: SystemdHost, name: str) -> dict[str, Any]:
    status, body = host.api(f"/api/v1/services/{name}")
    assert status == 200, body
    return dict(body)


def recoveries(host: SystemdHost, name: str | None = None) -> list[dict[str, Any]]:
    query = f"?service={name}&limit=100" if name else "?limit=100"
    status, body = host.api(f"/api/v1/recoveries{query}")
    assert status == 200, body
    return list(body["recoveries"])


def wait_status(host: SystemdHost, name: str, status: str) -> dict[str, Any]:
    return wait_for(
        lambda: (svc := service(host, name))["status"] == status and svc,
        timeout=HEAL_TIMEOUT_S,
        interval=0.2,
        message=f"{name} did not become {status}",
    )


def wait_recovery(host: SystemdHost, name: str, after_id: int) -> dict[str, Any]:
    """The first recovery of *name* newer than *after_id*, once it has ended."""

    def finished() -> dict[str, Any] | None:
        new = [r for r in recoveries(host, name) if r["id"] > after_id and r["ended_at"]]
        return min(new, key=lambda r: r["id"]) if new else None

    return wait_for(finished, HEAL_TIMEOUT_S, 0.2, f"no finished recovery of {name}")


def last_id(host: SystemdHost, name: str) -> int:
    return max((r["id"] for r in recoveries(host, name)), default=0)


def journal_has(host: SystemdHost, unit: str, cursor: str, match: Callable[[str], bool]) -> bool:
    return any(match(str(e.get("MESSAGE", ""))) for e in host.journal(unit, since_cursor=cursor))


# -- install, start, reload ------------------------------------------------------------


def test_install_script_writes_the_unit_and_starts_medic(
    systemd_host: SystemdHost, installed: str
) -> None:
    host = systemd_host
    assert "wrote /etc/systemd/system/medic.service" in installed
    assert "wrote /etc/medic/config.yaml" in installed
    assert "running systemctl enable --now medic.service" in installed
    assert EXEC_START in host.check("cat", "/etc/systemd/system/medic.service").splitlines()
    assert "restart-unit.yaml" in host.check("ls", "/etc/medic/playbooks").split()
    assert host.systemctl("is-enabled", "medic").strip() == "enabled"
    wait_active(host)
    assert host.prop("medic", "StatusText").startswith("watching 2 services")
    status, body = host.api("/api/v1/services")
    assert status == 200
    assert {s["name"] for s in body["services"]} == {"host", "medic-api"}


def test_install_again_keeps_the_operators_config(
    systemd_host: SystemdHost, installed: str
) -> None:
    host = systemd_host
    host.sh("echo '# edited by the operator' >>/etc/medic/config.yaml")
    out = host.check("/opt/medic/venv/bin/medic", "install-unit")
    assert "kept /etc/medic/config.yaml" in out
    assert "never overwrites" in out
    assert "unchanged /etc/systemd/system/medic.service" in out
    assert host.check("tail", "-n1", "/etc/medic/config.yaml").strip() == "# edited by the operator"


def test_start_returns_only_once_medic_is_ready(systemd_host: SystemdHost, installed: str) -> None:
    host = systemd_host
    host.systemctl("stop", "medic")
    cursor = host.cursor()
    # One exec: nothing between start returning and the API being asked.
    health = json.loads(
        host.sh("systemctl start medic && curl -sf http://127.0.0.1:8321/api/v1/health")
    )
    assert health["status"] == "healthy"
    assert host.prop("medic", "ActiveState") == "active"
    entries = host.journal("medic", since_cursor=cursor)
    started = next(e for e in entries if str(e["MESSAGE"]).startswith("Started medic.service"))
    scheduled = next(
        line for line in journal_json_lines(entries) if line["event"] == "orchestrator.started"
    )
    # medic's own timestamp (ms) of scheduling the checks, against systemd's (us) of "Started".
    started_at = datetime.fromtimestamp(int(started["__REALTIME_TIMESTAMP"]) / 1e6, UTC)
    assert datetime.fromisoformat(scheduled["timestamp"]) <= started_at


def test_reload_applies_a_new_config_and_refuses_a_broken_one(
    systemd_host: SystemdHost, installed: str
) -> None:
    host = systemd_host
    wait_active(host)
    pid = host.prop("medic", "MainPID")
    original = host.check("cat", "/etc/medic/config.yaml")
    probe = "reload-probe:\n    check: {type: system, disk_percent_max: 99}\n"
    try:
        cursor = host.cursor()
        host.write(
            "/etc/medic/config.yaml", original.replace("services:\n", f"services:\n  {probe}", 1)
        )
        host.systemctl("reload", "medic")
        wait_for(
            lambda: host.api("/api/v1/services/reload-probe")[0] == 200,
            15,
            0.1,
            "the reloaded config's new service did not appear",
        )
        wait_active(host)
        assert journal_has(host, "medic", cursor, lambda m: m.startswith("Reloaded medic.service"))
        assert journal_has(host, "medic", cursor, lambda m: '"event": "config.reloaded"' in m)

        cursor = host.cursor()
        host.write("/etc/medic/config.yaml", original + "\nservices: [not, a, mapping]\n")
        host.systemctl("reload", "medic")
        wait_for(
            lambda: journal_has(host, "medic", cursor, lambda m: '"event": "reload.refused"' in m),
            15,
            0.1,
            "no reload.refused in the journal",
        )
        wait_active(host)
        assert host.api("/api/v1/services/reload-probe")[0] == 200
        assert host.prop("medic", "MainPID") == pid
    finally:
        host.write("/etc/medic/config.yaml", original)
        host.systemctl("reload", "medic")


def test_security_exposure_is_recorded_and_low(systemd_host: SystemdHost, installed: str) -> None:
    report = systemd_host.check("systemd-analyze", "security", "--no-pager", "medic.service")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "systemd-security.txt").write_text(report)
    match = re.search(r"Overall exposure level for medic\.service: (\d+\.\d)", report)
    assert match, report
    score = float(match[1])
    assert score <= SECURITY_BOUND
    readme = (REPO_ROOT / "README.md").read_text()
    assert f"systemd-analyze security medic.service` scores it **{score}**" in readme


# -- healing units through systemd -------------------------------------------------------


def test_sandbox_keeps_the_docker_socket_and_state_dir(healing: SystemdHost) -> None:
    host = healing
    wait_status(host, "docker-socket", "healthy")
    wait_status(host, "sandbox-fs", "healthy")
    assert host.run("test", "-e", "/var/lib/medic/.probe").returncode == 0
    assert host.run("test", "-e", "/etc/.medic-probe").returncode != 0


def test_killed_unit_is_restarted_by_medic_through_systemctl(healing: SystemdHost) -> None:
    host = healing
    wait_status(host, "demo-http", "healthy")
    before = last_id(host, "demo-http")
    old_pid = host.prop("demo-http", "MainPID")
    cursor = host.cursor()

    host.systemctl("kill", "--signal=KILL", "demo-http")

    recovery = wait_recovery(host, "demo-http", before)
    failed = [
        line["detail"]
        for line in journal_json_lines(host.journal("medic", since_cursor=cursor))
        if line.get("service") == "demo-http" and line["event"] == "service.unhealthy"
    ]
    assert failed and "main process killed by SIGKILL" in failed[0], failed
    assert recovery["outcome"] == "succeeded", recovery
    assert (recovery["playbook"], recovery["failure_type"]) == ("restart-unit", "service_crash")
    restart = recovery["steps"][0]
    assert restart["action"] == "restart_unit"
    assert "restarted demo-http.service: active (running)" in restart["detail"]
    props = host.show("demo-http", "ActiveState", "NRestarts", "MainPID")
    # NRestarts counts systemd's own restarts: there were none, medic did it.
    assert (props["ActiveState"], props["NRestarts"]) == ("active", "0")
    assert props["MainPID"] != old_pid
    wait_status(host, "demo-http", "healthy")


def test_operator_stop_is_left_alone(healing: SystemdHost) -> None:
    host = healing
    wait_status(host, "demo-http", "healthy")
    before = last_id(host, "demo-http")

    host.systemctl("stop", "demo-http")

    stopped = wait_status(host, "demo-http", "stopped_by_operator")
    assert "stopped cleanly" in stopped["last_check"]["detail"]
    seen = {stopped["last_check"]["time"]}
    wait_for(
        lambda: seen.add(service(host, "demo-http")["last_check"]["time"]) or len(seen) > 3,
        HEAL_TIMEOUT_S,
        0.1,
        "medic stopped checking demo-http",
    )
    assert service(host, "demo-http")["status"] == "stopped_by_operator"
    assert host.show("demo-http", "ActiveState", "NRestarts") == {
        "ActiveState": "inactive",
        "NRestarts": "0",
    }
    assert last_id(host, "demo-http") == before

    host.systemctl("start", "demo-http")
    wait_status(host, "demo-http", "healthy")


def test_start_limit_hit_is_reported_and_cleared_with_reset_failed(healing: SystemdHost) -> None:
    host = healing
    wait_status(host, "demo-limited", "healthy")
    before = last_id(host, "demo-limited")
    cursor = host.cursor()

    refused = next(
        (
            r
            for r in (host.run("systemctl", "restart", "demo-limited") for _ in range(5))
            if r.returncode != 0
        ),
        None,
    )
    assert refused is not None, "systemd never refused a start"

    recovery = wait_recovery(host, "demo-limited", before)
    assert recovery["outcome"] == "succeeded", recovery
    assert "reset-failed first" in recovery["steps"][0]["detail"]
    assert "start-limit-hit" in recovery["steps"][0]["detail"]
    unhealthy = [
        line
        for line in journal_json_lines(host.journal("medic", since_cursor=cursor))
        if line.get("service") == "demo-limited" and line["event"] == "service.unhealthy"
    ]
    assert unhealthy, "medic logged no failure of demo-limited"
    assert (
        "start limit hit: run systemctl reset-failed demo-limited.service" in unhealthy[0]["detail"]
    )
    assert host.prop("demo-limited", "ActiveState") == "active"


def test_journal_lines_carry_service_and_playbook(healing: SystemdHost) -> None:
    host = healing
    before = last_id(host, "demo-http")
    host.systemctl("kill", "--signal=KILL", "demo-http")
    wait_recovery(host, "demo-http", before)

    entries = host.journal("medic")
    assert {e["_SYSTEMD_UNIT"] for e in entries if e.get("_PID") != "1"} == {"medic.service"}
    lines = journal_json_lines(entries)
    playbook_lines = [
        line
        for line in lines
        if line.get("service") == "demo-http" and line.get("playbook") == "restart-unit"
    ]
    assert playbook_lines, "no journal line with service=demo-http and playbook=restart-unit"
    assert all({"timestamp", "level", "logger", "event"} <= set(line) for line in lines)


# -- watchdog and stop ---------------------------------------------------------------------


def test_watchdog_restarts_a_stalled_loop_and_history_survives(healing: SystemdHost) -> None:
    host = healing
    dropin = "/etc/systemd/system/medic.service.d/watchdog.conf"
    host.write(dropin, (FILES / "watchdog.conf").read_text())
    try:
        host.systemctl("daemon-reload")
        host.systemctl("restart", "medic")
        wait_active(host)
        wait_status(host, "demo-http", "healthy")
        status, body = host.api(
            "/api/v1/services/demo-http/recover",
            "POST",
            {"failure_type": "service_crash"},
            token=API_TOKEN,
        )
        assert status in (200, 202), body
        wait_for(
            lambda: all(r["ended_at"] for r in recoveries(host)),
            HEAL_TIMEOUT_S,
            0.2,
            "the manual recovery did not finish",
        )
        history = recoveries(host)
        props = host.show("medic", "NRestarts", "MainPID")
        cursor = host.cursor()

        host.systemctl("kill", "--kill-whom=main", "--signal=USR2", "medic")

        wait_for(
            lambda: journal_has(host, "medic", cursor, lambda m: "result 'watchdog'" in m),
            HEAL_TIMEOUT_S,
            0.1,
            "systemd did not report a watchdog failure",
        )
        wait_for(
            lambda: host.prop("medic", "NRestarts") == str(int(props["NRestarts"]) + 1),
            HEAL_TIMEOUT_S,
            0.1,
            "systemd did not restart medic",
        )
        wait_active(host)
        assert host.prop("medic", "MainPID") != props["MainPID"]
        after = {r["id"]: r for r in recoveries(host)}
        for old in history:
            assert after[old["id"]]["outcome"] == old["outcome"]
    finally:
        host.check("rm", "-f", dropin)
        host.systemctl("daemon-reload")
        host.systemctl("restart", "medic")
        wait_active(host)


def test_stop_is_clean_and_not_restarted(healing: SystemdHost) -> None:
    host = healing
    wait_active(host)
    restarts = host.prop("medic", "NRestarts")
    cursor = host.cursor()
    try:
        host.systemctl("stop", "medic")
        props = host.show("medic", "ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
        # ExecMainCode 1 is CLD_EXITED: medic exited by itself, with status 0.
        assert props == {
            "ActiveState": "inactive",
            "Result": "success",
            "ExecMainCode": "1",
            "ExecMainStatus": "0",
        }
        assert host.prop("medic", "NRestarts") == restarts
        assert journal_has(host, "medic", cursor, lambda m: '"event": "daemon.stopped"' in m)
    finally:
        host.systemctl("start", "medic")

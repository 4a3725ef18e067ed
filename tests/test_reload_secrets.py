"""A secret missing from a config that SIGHUP loads is logged exactly as at
start: a postgres service added by a reload, its ``dsn_env`` naming a
variable that is not set, must not sit ``unknown`` with nothing in the log."""

from __future__ import annotations

import signal
from typing import Any

from tests.helpers import free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess

UNSET = "H_LOCK_TEST_UNSET_DSN"
ENV: dict[str, str | None] = {UNSET: None}


def config(port: int, with_database: bool) -> str:
    text = f"api: {{listen: 127.0.0.1:{port}}}\nservices:\n"
    text += "  host:\n    check: {type: system, disk_percent_max: 100}\n"
    if with_database:
        text += f"  database:\n    check: {{type: postgres, dsn_env: {UNSET}}}\n"
    return text


def warnings(daemon: DaemonProcess) -> list[dict[str, Any]]:
    """The missing-secret warnings, without their time."""
    return [
        {k: v for k, v in record.items() if k != "timestamp"}
        for record in daemon.find_logs(event="config.secret_missing")
    ]


def test_a_secret_missing_after_a_reload_is_logged_as_at_start(
    medic_daemon: DaemonFactory,
) -> None:
    port = free_port()
    daemon = medic_daemon(config(port, with_database=False), env=ENV)
    assert warnings(daemon) == []

    daemon.write_config(config(port, with_database=True))
    daemon.send_signal(signal.SIGHUP)
    daemon.wait_for_log(event="config.reloaded")
    wait_for(lambda: warnings(daemon), 5, message="the reload warned of the missing secret")
    reloaded = warnings(daemon)
    assert [(w["level"], w["key"]) for w in reloaded] == [
        ("warning", "services.database.check.dsn_env")
    ]
    assert UNSET in reloaded[0]["detail"]
    assert daemon.stop() == 0

    # The same config at start says the same, word for word.
    at_start = medic_daemon(config(port, with_database=True), env=ENV)
    assert warnings(at_start) == reloaded

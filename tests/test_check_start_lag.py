"""``medic_check_start_lag_seconds``: how late scheduled checks start."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import free_port, wait_for
from tests.plugins.daemon import DaemonFactory


def _lag(text: str) -> dict[str, float]:
    families = {f.name: f for f in text_string_to_metric_families(text)}
    family = families["medic_check_start_lag_seconds"]
    assert family.type == "histogram" and family.documentation
    return {s.name: s.value for s in family.samples if "le" not in s.labels}


def test_scheduled_checks_record_their_start_lag(
    medic_daemon: DaemonFactory, listening_port: int, tmp_path: Path
) -> None:
    playbooks = tmp_path / "no-playbooks"
    playbooks.mkdir()
    config = f"""
api: {{listen: 127.0.0.1:{free_port()}}}
playbooks_dir: {playbooks}
services:
  target:
    check: {{type: tcp, port: {listening_port}}}
    interval: 200ms
"""
    daemon = medic_daemon(config)

    def enough() -> dict[str, float] | None:
        code, text = daemon.get("/metrics")
        lag = _lag(text)
        return lag if code == 200 and lag["medic_check_start_lag_seconds_count"] >= 5 else None

    lag = wait_for(enough, 15)
    assert lag is not None
    mean = lag["medic_check_start_lag_seconds_sum"] / lag["medic_check_start_lag_seconds_count"]
    assert 0.0 <= mean < 0.5  # an idle daemon starts its checks on time

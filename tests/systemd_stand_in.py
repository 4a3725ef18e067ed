"""The systemctl stand-in of ``tests/fixtures/systemd/bin`` (see the README there):
``stand_in`` puts it first on PATH with an empty set of units.

Use: ``from tests.systemd_stand_in import StandIn, stand_in_fixture  # noqa: F401``
and ask for the ``stand_in`` fixture.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

STAND_IN = Path(__file__).parent / "fixtures" / "systemd" / "bin"


@dataclass
class StandIn:
    state_path: Path
    log_path: Path

    def set_unit(self, unit: str, **props: str) -> None:
        """Add or replace a unit; properties default to an active, running unit."""
        units_state = json.loads(self.state_path.read_text())
        units_state[unit] = {
            "NRestarts": "0",
            "Result": "success",
            "LoadState": "loaded",
            "ActiveState": "active",
            "SubState": "running",
            **props,
        }
        self.state_path.write_text(json.dumps(units_state))

    def verbs(self) -> list[str]:
        """The systemctl verbs called so far, in order."""
        lines = self.log_path.read_text().splitlines() if self.log_path.exists() else []
        return [json.loads(line)[1] for line in lines]


@pytest.fixture(name="stand_in")
def stand_in_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StandIn:
    fake = StandIn(tmp_path / "units.json", tmp_path / "systemctl.log")
    fake.state_path.write_text("{}")
    monkeypatch.setenv("PATH", f"{STAND_IN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SYSTEMCTL_STATE", str(fake.state_path))
    monkeypatch.setenv("FAKE_SYSTEMCTL_LOG", str(fake.log_path))
    return fake

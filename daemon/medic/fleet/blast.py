"""The group's blast radius: when more than ``max_failing_hosts_fraction`` of a
group's hosts (at least 3) fail at once for reasons of their own, every host
of the group holds automatic recovery (``fleet_hold``) until the fraction
falls back to ``HYSTERESIS`` of the threshold.

A host whose lease expired (its key vanished without saying it was stopping)
counts as failing; when every other host of the group is lost, this host
cannot tell a fleet-wide outage from its own partition: it holds too.
"""

from __future__ import annotations

from typing import Any

from medic.config.fleet import FleetConfig
from medic.fleet.view import FleetView

MIN_HOSTS = 3
HYSTERESIS = 0.8
"""The hold is lifted once the failing fraction is at most this share of the threshold."""


class GroupHealth:
    def __init__(self, cfg: FleetConfig) -> None:
        self.cfg = cfg
        self._known: set[tuple[str, str]] = set()
        self._current: dict[tuple[str, str], bool] = {}
        self._stopping: set[tuple[str, str]] = set()
        self.hold: str | None = None

    def update(self, view: FleetView) -> bool:
        """Take in the hosts' summaries; True when the group's hold was just lifted."""
        current = {k: bool(e.value.get("failing")) for k, e in view.hosts.items()}
        for key in self._known - set(current):
            if key in self._stopping:
                self._known.discard(key)  # stopped on purpose: not failing
        self._stopping = {k for k, e in view.hosts.items() if e.value.get("stopping")}
        self._known |= set(current)
        self._current = current
        before = self.hold
        self.hold = self._judge()
        return before is not None and self.hold is None

    def _judge(self) -> str | None:
        group = self.cfg.group
        members = {k for k in self._known if k[0] == group}
        total = len(members)
        if total < MIN_HOSTS:
            return None
        failing = sum(1 for k in members if self._current.get(k, True))
        fraction, limit = failing / total, self.cfg.max_failing_hosts_fraction
        others = members - {(group, self.cfg.host)}
        if others and all(k not in self._current for k in others):
            return (
                f"every other host of group {group} is lost ({len(others)} leases expired):"
                " a partition or a fleet-wide outage; automatic recovery is held"
            )
        holding = self.hold is not None
        if fraction > limit or (holding and fraction > limit * HYSTERESIS):
            return (
                f"{failing} of {total} hosts of group {group} are failing at once"
                f" (more than {limit:.0%}): automatic recovery is held fleet-wide"
            )
        return None

    def hold_for(self) -> str | None:
        return self.hold

    def state_of(self, group: str, host: str, value: dict[str, Any]) -> str:
        if value.get("stopping"):
            return "stopping"
        return "failing" if value.get("failing") else "ok"

    def lost(self) -> set[tuple[str, str]]:
        return self._known - set(self._current)

    def counts(self) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        for key, failing in self._current.items():
            label = (key[0], "failing" if failing else "ok")
            out[label] = out.get(label, 0) + 1
        for key in self.lost():
            out[(key[0], "lost")] = out.get((key[0], "lost"), 0) + 1
        return out

"""The fleet part of the daemon: the etcd session, the gate the heal side
asks, the group's blast radius, emergency stops, metrics and the fleet view
(``GET /api/v1/fleet``).

Built by the orchestrator only when ``fleet:`` is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from importlib import metadata
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from medic.config.fleet import FleetConfig
from medic.core.vocabulary import ServiceStatus
from medic.fleet.blast import GroupHealth
from medic.fleet.gate import FleetGate
from medic.fleet.link import FleetUnavailable, log
from medic.fleet.session import Session
from medic.heal.state import ServiceSource


def _version() -> str:
    try:
        return metadata.version("medic")
    except metadata.PackageNotFoundError:
        return "unknown"


class Fleet:
    def __init__(
        self,
        cfg: FleetConfig,
        services: ServiceSource,
        held_reason: Callable[[str], str | None],
        registry: CollectorRegistry,
    ) -> None:
        self.cfg = cfg
        self._services = services
        self._held_reason = held_reason
        self.started_at = time.time()
        self.version = _version()
        self.session = Session(cfg, self.summary, self._on_change, self._on_connected)
        self.health = GroupHealth(cfg)
        self.gate = FleetGate(self.session, self.health.hold_for)
        self._task: asyncio.Task[None] | None = None
        self.connected_gauge = Gauge(
            "medic_fleet_connected", "1 while etcd answers, else 0.", registry=registry
        )
        self.hosts_gauge = Gauge(
            "medic_fleet_hosts", "Hosts of the fleet by group and state.", ["group", "state"],
            registry=registry,
        )  # fmt: skip

    # the daemon's part ---------------------------------------------------------------

    def start(self) -> None:
        log.info(
            "fleet.starting",
            message="Joining the fleet",
            host=self.cfg.host,
            group=self.cfg.group,
            endpoints=self.cfg.etcd.endpoints,
        )
        self._task = asyncio.create_task(self.session.run(), name="fleet-session")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.session.close()

    # what this host publishes --------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        states = self._services.states()
        counts = {"up": 0, "down": 0, "held": 0}
        holds: dict[str, str] = {}
        failing = False
        for name, state in states.items():
            if state.status is ServiceStatus.HEALTHY:
                counts["up"] += 1
            elif state.status is ServiceStatus.HELD:
                counts["held"] += 1
                holds[name] = self._held_reason(name) or ""
            elif state.is_failing:
                counts["down"] += 1
            failing = failing or (state.failing_on_its_own and not state.spec.shared)
        return {
            "host": self.cfg.host,
            "group": self.cfg.group,
            "version": self.version,
            "started_at": self.started_at,
            "services": counts,
            "holds": holds,
            "failing": failing,
        }

    # what the fleet tells this host --------------------------------------------------

    def _on_connected(self, connected: bool) -> None:
        self.connected_gauge.set(1 if connected else 0)
        if connected:
            self._recheck_failing()

    def _on_change(self, kind: str, name: str, present: bool) -> None:
        states = self._services.states()
        if kind in ("heal", "result") and not (kind == "heal" and present) and name in states:
            self._services.request_check(name)
        elif kind == "stop" and not present:
            log.warning("fleet.resumed", message="The fleet's emergency stop was lifted")
            self._recheck_failing()
        elif kind == "stop":
            stop = self.session.view.stop_for(self.cfg.group)
            if stop is not None:
                log.warning(
                    "fleet.stopped",
                    message="Emergency stop: automatic recovery is held fleet-wide",
                    by=stop.value.get("by"),
                    reason=stop.value.get("reason"),
                )
        elif kind in ("hosts", "session", "lease"):
            self._update_hosts()

    def _update_hosts(self) -> None:
        lifted = self.health.update(self.session.view)
        self.hosts_gauge.clear()
        for (group, state), count in self.health.counts().items():
            self.hosts_gauge.labels(group=group, state=state).set(count)
        if lifted:
            self._recheck_failing()

    def _recheck_failing(self) -> None:
        for name, state in self._services.states().items():
            if state.is_failing or state.status is ServiceStatus.HELD:
                self._services.request_check(name)

    # operators' calls ----------------------------------------------------------------

    async def emergency_stop(self, group: str | None, reason: str, by: str) -> dict[str, Any]:
        key = self.session.keys.stop(group).encode()
        body = {"by": by, "reason": reason, "group": group, "at": time.time()}
        await self.session.link.call(lambda c: c.put(key, json.dumps(body).encode()))
        return body

    async def resume(self, group: str | None) -> None:
        key = self.session.keys.stop(group).encode()
        await self.session.link.call(lambda c: c.delete(key))

    # the fleet view ------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        view, now = self.session.view, time.time()
        ages = await self._heartbeat_ages()
        hosts = []
        for (group, host), entry in sorted(view.hosts.items()):
            value = entry.value
            hosts.append(
                {
                    "host": host,
                    "group": group,
                    "state": self.health.state_of(group, host, value),
                    "heartbeat_age_s": ages.get(entry.lease),
                    "version": value.get("version"),
                    "started_at": value.get("started_at"),
                    "services": value.get("services", {}),
                    "holds": value.get("holds", {}),
                }
            )
        for group, host in sorted(self.health.lost()):
            hosts.append({"host": host, "group": group, "state": "lost", "heartbeat_age_s": None})
        stop = view.stop_for(self.cfg.group)
        return {
            "host": self.cfg.host,
            "group": self.cfg.group,
            "connected": self.session.connected,
            "endpoint": self.session.link.endpoint,
            "emergency_stop": None if stop is None else stop.value,
            "hold": self.health.hold_for(),
            "hosts": hosts,
            "locks": [
                {"service": s, **e.value, "fence": e.create_revision,
                 "age_s": round(now - e.value.get("since", now), 3)}
                for s, e in sorted(view.locks.items())
            ],
            "slots": [
                {"group": g, "slot": n, **e.value} for (g, n), e in sorted(view.slots.items())
            ],
            "writes": self.session.writes,
        }  # fmt: skip

    async def _heartbeat_ages(self) -> dict[int, float]:
        """Seconds since each host's last keep-alive, from its lease's remaining TTL."""
        if not self.session.connected:
            return {}
        leases = {e.lease for e in self.session.view.hosts.values() if e.lease}

        async def age(lease: int) -> tuple[int, float | None]:
            try:
                info = await self.session.link.call(lambda c: c.get_lease_info(lease, keys=False))
            except FleetUnavailable:
                return lease, None
            if info.TTL <= 0:
                return lease, None
            return lease, float(max(0, info.grantedTTL - info.TTL))

        found = await asyncio.gather(*(age(lease) for lease in sorted(leases)[:200]))
        return {lease: a for lease, a in found if a is not None}

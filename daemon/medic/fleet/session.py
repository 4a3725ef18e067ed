"""One medic's session with etcd: its lease, its summary, the watch that keeps
``FleetView`` current, and reconnecting when any of them fails.

- The lease is kept alive every ``lease_ttl / 3``; a lease found lost (the
  daemon was frozen past its TTL, or etcd restarted without it) is granted
  again and the host registered again, with a warning.
- The summary (``P/hosts/GROUP/HOST``) is written when it changed, at most
  once per ``summary_interval``: an idle host writes nothing.
- Losing etcd (every endpoint fails, no quorum: the keep-alive fails) marks the
  session disconnected (``on_connected(False)``) and it tries again, every
  second at most, by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import aetcd

from medic.config.fleet import FleetConfig
from medic.fleet.link import EtcdLink, FleetUnavailable, log
from medic.fleet.view import FleetView, Keys

RETRY_S = 1.0
_CHANGE_POLL_S = 0.5


class LeaseLost(FleetUnavailable):
    """The lease expired on the server: the keys bound to it are gone."""


class Session:
    def __init__(
        self,
        cfg: FleetConfig,
        summary: Callable[[], dict[str, Any]],
        on_change: Callable[[str, str, bool], None],
        on_connected: Callable[[bool], None],
    ) -> None:
        self.cfg = cfg
        self.link = EtcdLink(cfg.etcd)
        self.keys = Keys(cfg.etcd.prefix)
        self.view = FleetView(self.keys)
        self.lease_id: int | None = None
        self.connected = False
        self._summary = summary
        self._on_change = on_change
        self._on_connected = on_connected
        self._published: str | None = None
        self._published_at = 0.0
        self.writes = 0
        """etcd writes this host made (summaries, locks, slots, results)."""

    @property
    def host_key(self) -> str:
        return self.keys.host(self.cfg.group, self.cfg.host)

    async def run(self) -> None:
        """Keep a session up until cancelled."""
        while True:
            try:
                await self._session()
            except (FleetUnavailable, aetcd.exceptions.ClientError, OSError) as e:
                self._set_connected(False, repr(e))
                await self.link.drop()
            await asyncio.sleep(RETRY_S)

    def _set_connected(self, connected: bool, why: str = "") -> None:
        if connected == self.connected:
            return
        self.connected = connected
        if connected:
            log.info("fleet.connected", message="Connected to etcd", endpoint=self.link.endpoint)
        else:
            log.error(
                "fleet.disconnected",
                message="etcd cannot be reached: shared and fleet-limited recoveries are held",
                error=why,
            )
        self._on_connected(connected)

    async def _session(self) -> None:
        await self._ensure_lease()
        self._published = None  # a new session publishes at once
        await self._publish()
        snapshot = await self.link.call(lambda c: c.get_prefix(self.keys.all.encode()))
        self.view.clear()
        for kv in snapshot:
            self.view.apply(kv.key, kv.value, kv.create_revision, kv.lease)
        start = snapshot.header.revision + 1
        watch = await self.link.call(
            lambda c: c.watch_prefix(self.keys.all.encode(), start_revision=start)
        )
        self._set_connected(True)
        self._on_change("session", "", True)
        tasks = [
            asyncio.create_task(self._follow(watch), name="fleet-watch"),
            asyncio.create_task(self._keep_alive(), name="fleet-keepalive"),
            asyncio.create_task(self._publish_changes(), name="fleet-summary"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
            raise FleetUnavailable("the etcd watch ended")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _ensure_lease(self) -> None:
        if self.lease_id is not None:
            reply = await self._refresh(self.lease_id)
            if reply is not None and reply.TTL > 0:
                return
            self._lease_lost()
        ttl = max(2, round(self.cfg.lease_ttl))
        lease = await self.link.call(lambda c: c.lease(ttl))
        self.lease_id = lease.id
        log.info("fleet.lease_granted", message="Holding a new etcd lease", lease=lease.id, ttl=ttl)

    async def _refresh(self, lease_id: int | None) -> Any:
        return await self.link.call(lambda c: c.refresh_lease(lease_id))

    def _lease_lost(self) -> None:
        log.warning(
            "fleet.lease_lost",
            message="The etcd lease expired (frozen or cut off past lease_ttl):"
            " its locks and slots are gone; granting a new one and registering again",
            lease=self.lease_id,
        )
        self.lease_id = None
        self._on_change("lease", "", False)

    async def _keep_alive(self) -> None:
        every = self.cfg.lease_ttl / 3
        while True:
            await asyncio.sleep(every)
            reply = await self._refresh(self.lease_id)
            if reply is None or reply.TTL <= 0:
                self._lease_lost()
                raise LeaseLost("the lease expired")

    async def _follow(self, watch: Any) -> None:
        async for event in watch:
            value = None if event.kind == "DELETE" else event.kv.value
            kind = self.view.apply(event.kv.key, value, event.kv.create_revision, event.kv.lease)
            name = event.kv.key.decode("utf-8", "replace").rsplit("/", 1)[-1]
            if kind:
                self._on_change(kind, name, value is not None)

    async def _publish_changes(self) -> None:
        while True:
            await asyncio.sleep(_CHANGE_POLL_S)
            await self._publish()

    async def _publish(self) -> None:
        """Write the summary if it changed and the last write is old enough."""
        body = json.dumps(self._summary(), sort_keys=True)
        if body == self._published:
            return
        if self._published is not None and time.time() - self._published_at < (
            self.cfg.summary_interval
        ):
            return
        lease_id = self.lease_id
        await self.link.call(lambda c: c.put(self.host_key.encode(), body.encode(), lease=lease_id))
        self.writes += 1
        self._published, self._published_at = body, time.time()

    async def close(self) -> None:
        """Give the lease back (its keys go at once), then close the connection."""
        lease_id, self.lease_id = self.lease_id, None
        if lease_id is not None:
            body = json.dumps({**self._summary(), "stopping": True}).encode()

            async def leave() -> None:
                await self.link.call(lambda c: c.put(self.host_key.encode(), body, lease=lease_id))
                await self.link.call(lambda c: c.revoke_lease(lease_id))

            # Bounded: a stop never waits long on an unreachable etcd (the lease
            # then expires by itself).
            with contextlib.suppress(FleetUnavailable, TimeoutError):
                await asyncio.wait_for(leave(), self.cfg.etcd.timeout)
        await self.link.close()

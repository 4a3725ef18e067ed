"""The fleet's answer to the heal side (``medic.heal.fleet_gate.FleetPort``).

Before an automatic recovery, in this order:

1. etcd unreachable: a shared service or a disruptive playbook is held
   ``fleet_unavailable`` (never run unfenced); anything else goes on locally;
2. an emergency stop for the fleet or the host's group: held ``fleet_hold``;
3. a ``shared: true`` service takes ``P/heal/SERVICE`` bound to the lease in a
   transaction on create revision 0; if another host holds it, held
   ``healed_elsewhere`` naming the holder (checked again when the lock goes).

Each disruptive step then takes one of the group's slots (``P/slots/GROUP/N``)
the same way, right before it runs, waiting up to ``disruptive_wait`` (else
``FleetHeld``: ``fleet_concurrency``), and gives it back as soon as the step
ends, however it ends: two hosts' other steps overlap freely, their disruptive
steps never. The give-back deletes the slot only if it is still the one taken
(its create revision): a slot lost with an expired lease and taken by another
host since is never deleted by a late give-back.

Before each step of a recovery holding the lock, the lock's create revision
is read back (a linearizable read): a different one, or none, is a broken
fence and the recovery ends ``fenced_out``. The result is written in a
transaction that compares that revision, and the lock goes with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import aetcd

from medic.core.vocabulary import HoldReason, RecoveryOutcome
from medic.fleet.link import FleetUnavailable, log
from medic.fleet.session import RETRY_S, Session
from medic.heal.fleet_gate import FencedOut, FleetHeld, Refusal
from medic.watch.state import ServiceState

_SLOT_POLL_S = 0.25
_UNREACHABLE = "etcd cannot be reached: a shared or fleet-limited recovery never runs unfenced"


class FleetGate:
    def __init__(self, session: Session, hold_reason: Any) -> None:
        self.session = session
        self._hold_reason = hold_reason
        """() -> str | None: why the group holds automatic recovery (blast radius)."""
        self.locks: dict[str, int] = {}
        """Shared services this host holds the heal lock of -> its create revision (fence)."""
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def cfg(self) -> Any:
        return self.session.cfg

    async def admit(self, state: ServiceState, disruptive: bool) -> Refusal | None:
        session, shared = self.session, state.spec.shared
        if not session.connected or session.lease_id is None:
            if shared or disruptive:
                return HoldReason.FLEET_UNAVAILABLE, _UNREACHABLE
            return None
        stop = session.view.stop_for(self.cfg.group)
        if stop is not None:
            by, reason = stop.value.get("by", "?"), stop.value.get("reason", "")
            return HoldReason.FLEET_HOLD, f"emergency stop by {by}: {reason}".rstrip(": ")
        held = self._hold_reason()
        if held is not None:
            return HoldReason.FLEET_HOLD, held
        if not shared:
            return None
        try:
            return await self._take_lock(state.name)
        except FleetUnavailable as e:
            self.release(state.name)
            return HoldReason.FLEET_UNAVAILABLE, f"etcd failed while taking the fleet lock: {e}"

    async def _take_lock(self, service: str) -> Refusal | None:
        key = self.session.keys.heal(service).encode()
        body = json.dumps({"host": self.cfg.host, "group": self.cfg.group, "since": time.time()})
        revision, holding = await self._create(key, body.encode())
        if revision is not None:
            self.locks[service] = revision
            log.info(
                "fleet.lock_taken",
                message="Took the shared-heal lock",
                service=service,
                fence=revision,
            )
            return None
        holder: dict[str, Any] = json.loads(holding) if holding else {}
        name = f"{holder.get('host', '?')} (group {holder.get('group', '?')})"
        return HoldReason.HEALED_ELSEWHERE, f"being healed by {name}"

    @contextlib.asynccontextmanager
    async def disruptive_slot(self, service: str) -> AsyncIterator[None]:
        slot = await self._take_slot(service)
        lease = self.session.lease_id  # the slot goes with it
        try:
            yield
        finally:
            # Given back however the step ended (cancelled too); waited for
            # briefly, so the next step does not find its own slot still taken,
            # and retried in the background if etcd does not answer now.
            give_back = self._spawn(self._give_back(service, slot, lease))
            await asyncio.wait({give_back}, timeout=self.cfg.etcd.timeout)

    async def _take_slot(self, service: str) -> tuple[str, int]:
        session, cfg = self.session, self.cfg
        deadline = time.monotonic() + cfg.disruptive_wait
        body = json.dumps({"host": cfg.host, "service": service, "since": time.time()}).encode()
        while True:
            if not session.connected or session.lease_id is None:
                raise FleetHeld(HoldReason.FLEET_UNAVAILABLE, _UNREACHABLE)
            for index in range(cfg.disruptive_concurrency):
                key = session.keys.slot(cfg.group, index)
                try:
                    revision, _ = await self._create(key.encode(), body)
                except FleetUnavailable as e:
                    detail = f"etcd failed while taking a disruptive slot: {e}"
                    raise FleetHeld(HoldReason.FLEET_UNAVAILABLE, detail) from e
                if revision is not None:
                    return key, revision
            if time.monotonic() >= deadline:
                detail = (
                    f"all {cfg.disruptive_concurrency} disruptive slots of group {cfg.group}"
                    f" stayed taken for {cfg.disruptive_wait:g}s"
                )
                raise FleetHeld(HoldReason.FLEET_CONCURRENCY, detail)
            await asyncio.sleep(_SLOT_POLL_S)

    async def _create(self, key: bytes, body: bytes) -> tuple[int | None, bytes | None]:
        """Create ``key`` bound to the lease if it does not exist: (its create
        revision, None); else (None, the value of whoever holds it)."""
        lease_id = self.session.lease_id

        async def txn(c: aetcd.Client) -> tuple[bool, list[Any]]:
            t = c.transactions
            result: tuple[bool, list[Any]] = await c.transaction(
                compare=[t.create(key) == 0],
                success=[t.put(key, body, lease=lease_id)],
                failure=[t.get(key)],
            )
            return result

        ok, responses = await self.session.link.call(txn)
        if not ok:
            holder = responses[0][0][0] if responses and responses[0] else None
            return None, holder
        self.session.writes += 1
        return int(responses[0].response_put.header.revision), None

    async def _give_back(self, service: str, slot: tuple[str, int], lease: int | None) -> None:
        key, revision = slot[0].encode(), slot[1]

        async def txn(c: aetcd.Client) -> bool:
            t = c.transactions
            ok, _ = await c.transaction(
                compare=[t.create(key) == revision], success=[t.delete(key)], failure=[]
            )
            return bool(ok)

        told = False
        while True:
            try:
                self.session.writes += await self.session.link.call(txn)
                return
            except FleetUnavailable as e:
                if not told:
                    log.warning(
                        "fleet.release_failed",
                        message="Could not give back a disruptive slot; trying again"
                        " while its lease lives",
                        service=service,
                        slot=slot[0],
                        error=str(e),
                    )
                    told = True
            if self.session.lease_id != lease:
                return  # the lease is gone, and the slot with it
            await asyncio.sleep(RETRY_S)

    async def fence(self, service: str) -> None:
        fence = self.locks.get(service)
        if fence is None:
            return
        key = self.session.keys.heal(service).encode()
        try:
            got = await self.session.link.call(lambda c: c.get(key))
        except FleetUnavailable as e:
            self.locks.pop(service, None)
            raise FencedOut(f"etcd cannot confirm the shared-heal lock: {e}") from e
        if got is None or got.create_revision != fence:
            self.locks.pop(service, None)
            log.warning(
                "fleet.fenced_out",
                message="The shared-heal lock was lost (lease expired): stopping this recovery",
                service=service,
                fence=fence,
            )
            raise FencedOut(
                f"the shared-heal lock (fence {fence}) was lost: its lease expired;"
                " another host may be healing it"
            )

    def finished(self, service: str, outcome: RecoveryOutcome, healthy: bool) -> None:
        fence = self.locks.pop(service, None)
        if fence is not None:
            self._spawn(self._publish_end(service, fence, outcome, healthy))

    def release(self, service: str) -> None:
        self.finished(service, RecoveryOutcome.INTERRUPTED, False)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _publish_end(self, service: str, fence: int, outcome: str, healthy: bool) -> None:
        try:
            await self._fenced_result(service, fence, outcome, healthy)
        except FleetUnavailable as e:
            log.warning(
                "fleet.release_failed",
                message="Could not give back the shared-heal lock; its lease will",
                service=service,
                error=str(e),
            )

    async def _fenced_result(self, service: str, fence: int, outcome: str, healthy: bool) -> None:
        keys = self.session.keys
        lock, result = keys.heal(service).encode(), keys.result(service).encode()
        body = {
            "host": self.cfg.host,
            "outcome": str(outcome),
            "healthy": healthy,
            "at": time.time(),
        }

        async def txn(c: aetcd.Client) -> bool:
            t = c.transactions
            ok, _ = await c.transaction(
                compare=[t.create(lock) == fence],
                success=[t.put(result, json.dumps(body).encode()), t.delete(lock)],
                failure=[],
            )
            return bool(ok)

        if await self.session.link.call(txn):
            self.session.writes += 1
            return
        log.warning(
            "fleet.result_fenced_out",
            message="A late result was not written: the shared-heal lock had passed on",
            service=service,
            fence=fence,
        )

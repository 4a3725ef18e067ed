"""The fleet's answer to the heal side (``medic.heal.fleet_gate.FleetPort``).

Before an automatic recovery, in this order:

1. etcd unreachable: a shared service or a disruptive playbook is held
   ``fleet_unavailable`` (never run unfenced); anything else goes on locally;
2. an emergency stop for the fleet or the host's group: held ``fleet_hold``;
3. a ``shared: true`` service takes ``P/heal/SERVICE`` bound to the lease in a
   transaction on create revision 0; if another host holds it, held
   ``healed_elsewhere`` naming the holder (checked again when the lock goes);
4. a disruptive playbook takes one of the group's slots the same way, waiting
   up to ``disruptive_wait``, else held ``fleet_concurrency``.

Before each step of a recovery holding the lock, the lock's create revision
is read back (a linearizable read): a different one, or none, is a broken
fence and the recovery ends ``fenced_out``. The result is written in a
transaction that compares that revision, and the lock goes with it.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aetcd

from medic.core.vocabulary import HoldReason, RecoveryOutcome
from medic.fleet.link import FleetUnavailable, log
from medic.fleet.session import Session
from medic.heal.fleet_gate import FencedOut, Refusal
from medic.watch.state import ServiceState

_SLOT_POLL_S = 0.25


class FleetGate:
    def __init__(self, session: Session, hold_reason: Any) -> None:
        self.session = session
        self._hold_reason = hold_reason
        """() -> str | None: why the group holds automatic recovery (blast radius)."""
        self.locks: dict[str, int] = {}
        """Shared services this host holds the heal lock of -> its create revision (fence)."""
        self.slots: dict[str, str] = {}
        """Services running a disruptive recovery -> the slot key taken."""
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def cfg(self) -> Any:
        return self.session.cfg

    async def admit(self, state: ServiceState, disruptive: bool) -> Refusal | None:
        session, shared = self.session, state.spec.shared
        if not session.connected or session.lease_id is None:
            if shared or disruptive:
                why = (
                    "etcd cannot be reached: a shared or fleet-limited recovery never runs unfenced"
                )
                return HoldReason.FLEET_UNAVAILABLE, why
            return None
        stop = session.view.stop_for(self.cfg.group)
        if stop is not None:
            by, reason = stop.value.get("by", "?"), stop.value.get("reason", "")
            return HoldReason.FLEET_HOLD, f"emergency stop by {by}: {reason}".rstrip(": ")
        held = self._hold_reason()
        if held is not None:
            return HoldReason.FLEET_HOLD, held
        try:
            if shared:
                refusal = await self._take_lock(state.name)
                if refusal is not None:
                    return refusal
            if disruptive:
                refusal = await self._take_slot(state.name)
                if refusal is not None:
                    self.release(state.name)
                    return refusal
        except FleetUnavailable as e:
            self.release(state.name)
            return HoldReason.FLEET_UNAVAILABLE, f"etcd failed while taking the fleet lock: {e}"
        return None

    async def _take_lock(self, service: str) -> Refusal | None:
        session = self.session
        key = session.keys.heal(service).encode()
        body = json.dumps({"host": self.cfg.host, "group": self.cfg.group, "since": time.time()})
        lease_id = session.lease_id

        async def txn(c: aetcd.Client) -> tuple[bool, list[Any]]:
            t = c.transactions
            result: tuple[bool, list[Any]] = await c.transaction(
                compare=[t.create(key) == 0],
                success=[t.put(key, body.encode(), lease=lease_id)],
                failure=[t.get(key)],
            )
            return result

        ok, responses = await session.link.call(txn)
        session.writes += ok
        if ok:
            self.locks[service] = responses[0].response_put.header.revision
            log.info(
                "fleet.lock_taken",
                message="Took the shared-heal lock",
                service=service,
                fence=self.locks[service],
            )
            return None
        holder: dict[str, Any] = {}
        if responses and responses[0]:
            holder = json.loads(responses[0][0][0])
        name = f"{holder.get('host', '?')} (group {holder.get('group', '?')})"
        return HoldReason.HEALED_ELSEWHERE, f"being healed by {name}"

    async def _take_slot(self, service: str) -> Refusal | None:
        session, cfg = self.session, self.cfg
        deadline = time.monotonic() + cfg.disruptive_wait
        body = json.dumps({"host": cfg.host, "service": service, "since": time.time()}).encode()
        while True:
            for index in range(cfg.disruptive_concurrency):
                key = session.keys.slot(cfg.group, index).encode()
                if await self._create(key, body):
                    self.slots[service] = key.decode()
                    return None
            if time.monotonic() >= deadline:
                detail = (
                    f"all {cfg.disruptive_concurrency} disruptive slots of group {cfg.group}"
                    f" stayed taken for {cfg.disruptive_wait:g}s"
                )
                return HoldReason.FLEET_CONCURRENCY, detail
            await asyncio.sleep(_SLOT_POLL_S)

    async def _create(self, key: bytes, body: bytes) -> bool:
        lease_id = self.session.lease_id

        async def txn(c: aetcd.Client) -> bool:
            t = c.transactions
            ok, _ = await c.transaction(
                compare=[t.create(key) == 0], success=[t.put(key, body, lease=lease_id)], failure=[]
            )
            return bool(ok)

        ok = await self.session.link.call(txn)
        self.session.writes += ok
        return ok

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
        slot = self.slots.pop(service, None)
        if fence is None and slot is None:
            return
        task = asyncio.create_task(self._publish_end(service, fence, slot, outcome, healthy))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def release(self, service: str) -> None:
        self.finished(service, RecoveryOutcome.INTERRUPTED, False)

    async def _publish_end(
        self, service: str, fence: int | None, slot: str | None, outcome: str, healthy: bool
    ) -> None:
        keys, link = self.session.keys, self.session.link
        try:
            if slot is not None:
                await link.call(lambda c: c.delete(slot.encode()))
            if fence is not None:
                await self._fenced_result(service, fence, outcome, healthy)
        except FleetUnavailable as e:
            log.warning(
                "fleet.release_failed",
                message="Could not give back a fleet lock or slot; its lease will",
                service=service,
                error=str(e),
            )
        del keys

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

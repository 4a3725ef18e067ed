"""The routes about recoveries: their history, one recovery, the operator's
approve/reject of one that waits for approval, and the Alertmanager receiver
that asks for recoveries."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import web

from medic.api.alerts import receive_alerts
from medic.api.errors import ApiError
from medic.api.inputs import caller, int_query, json_body
from medic.api.state import orchestrator
from medic.core.bus import Event
from medic.core.errors import RecoveryNotFoundError
from medic.store import RecoveryRecord

DECISION_WAIT_S = 5.0
"""How long approve/reject wait for the recovery to act on the decision."""

_RECOVERY_ENDS = ("recovery.succeeded", "recovery.failed", "recovery.finished")


async def recoveries(request: web.Request) -> web.Response:
    limit = int_query(request, "limit", 50, 1000)
    offset = int_query(request, "offset", 0, 10**9)
    rows, total = orchestrator(request).store.recoveries(
        request.query.get("service") or None, limit, offset
    )
    return web.json_response({"recoveries": [r.as_json() for r in rows], "total": total})


async def recovery(request: web.Request) -> web.Response:
    record = orchestrator(request).store.recovery(_recovery_id(request))
    if record is None:
        raise RecoveryNotFoundError(_recovery_id(request))
    return web.json_response(record.as_json())


def _recovery_id(request: web.Request) -> int:
    try:
        rec_id = int(request.match_info["id"])
    except ValueError:
        raise ApiError(404, "RECOVERY_NOT_FOUND", "recovery ids are integers") from None
    if not 0 < rec_id < 2**63:  # SQLite's integer range; ids start at 1
        raise RecoveryNotFoundError(rec_id)
    return rec_id


def _or_null(record: RecoveryRecord | None) -> dict[str, Any] | None:
    return record.as_json() if record is not None else None


async def approve_recovery(request: web.Request) -> web.Response:
    return await _decide(request, approve=True)


async def reject_recovery(request: web.Request) -> web.Response:
    return await _decide(request, approve=False)


async def _decide(request: web.Request, *, approve: bool) -> web.Response:
    """Approve or reject; answer with the recovery as it stands once the decision
    took effect: rejected and finished (with its detail), or approved and resumed."""
    orch = orchestrator(request)
    rec_id = _recovery_id(request)
    who = caller(request)
    record = orch.store.recovery(rec_id)
    service = record.service if record else None
    queue = orch.bus.subscribe()  # before deciding: the events that follow are ours to see
    try:
        orch.engine.decide_approval(rec_id, approve, str(who["who"]))
        orch.store.audit(
            "operator.approve" if approve else "operator.reject", None, **who, recovery_id=rec_id
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                _decision_taken(queue, rec_id, service, approve), DECISION_WAIT_S
            )
    finally:
        orch.bus.unsubscribe(queue)
    return web.json_response(_or_null(orch.store.recovery(rec_id)))


async def _decision_taken(
    queue: asyncio.Queue[Event], rec_id: int, service: str | None, approve: bool
) -> None:
    """Return once the recovery acted on the decision: a rejected one has ended
    (its outcome and detail recorded); an approved one has resumed (its service
    is ``recovering``) or already ended."""
    while True:
        event = await queue.get()
        data = event.data
        if data.get("recovery_id") == rec_id and event.name in _RECOVERY_ENDS:
            return
        resumed = event.name == "service.state" and data.get("new") == "recovering"
        if approve and resumed and data.get("service") == service:
            return


async def alerts(request: web.Request) -> web.Response:
    """``POST /api/v1/alerts``: Prometheus Alertmanager's webhook receiver (bearer token).

    Request: Alertmanager's payload, ``{"version": "4", "status", "receiver",
    "groupKey", "alerts": [{"status": "firing" | "resolved", "labels": {"service",
    "failure_type"?, ...}, "annotations", "startsAt", "fingerprint", ...}], ...}``.
    Response 200: ``{"accepted": [{"service", "failure_type", "recovery_id"}],
    "held": [{"service", "failure_type", "reason", "detail"}], "unknown_services":
    [str], "ignored": [{"labels", "reason": "resolved" | "no service label" |
    "unknown failure_type", "detail"?}]}``. 422 ``INVALID_ALERT_PAYLOAD`` (or
    ``INVALID_BODY`` for a non-object), 400 ``INVALID_JSON``, 401/403 without a token.
    """
    body = await json_body(request)
    return web.json_response(receive_alerts(orchestrator(request), body, caller(request)))


__all__ = ["alerts", "approve_recovery", "recoveries", "recovery", "reject_recovery"]

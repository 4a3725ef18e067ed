"""Approval: a recovery whose playbook says ``approval: required`` waits for
an operator (``POST /api/v1/recoveries/{id}/approve`` or ``/reject``), and
ends ``expired`` when nobody decides within its ``approval_timeout``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from medic.core.errors import RecoveryNotFoundError
from medic.core.vocabulary import RecoveryOutcome, ServiceStatus
from medic.heal.errors import NotWaitingForApproval
from medic.heal.recording import HealRecorder
from medic.heal.state import HealState, ServiceSource
from medic.watch.state import ServiceState


class Approvals:
    def __init__(
        self,
        services: Callable[[], ServiceSource],
        recorder: HealRecorder,
    ) -> None:
        self._services = services
        self._recorder = recorder
        self._waiting: dict[int, asyncio.Future[tuple[bool, str]]] = {}

    def decide(self, recovery_id: int, approve: bool, who: str) -> None:
        """An operator approves or rejects a recovery that waits for approval."""
        future = self._waiting.get(recovery_id)
        if future is None or future.done():
            if self._recorder.journal.recovery(recovery_id) is None:
                raise RecoveryNotFoundError(recovery_id)
            raise NotWaitingForApproval(f"recovery {recovery_id} is not waiting for approval")
        # Recorded before the recovery resumes, so the caller sees the decision at once.
        self._recorder.approval_answered(recovery_id, approve)
        future.set_result((approve, who))

    async def wait(
        self,
        state: ServiceState,
        heal: HealState,
        recovery_id: int,
        fields: dict[str, object],
        timeout_s: float,
    ) -> RecoveryOutcome | None:
        """None when approved; else how the recovery ends (rejected, expired, interrupted).

        ``fields``: the ``recovery.approval_required`` event's playbook and failure_type.
        """
        future: asyncio.Future[tuple[bool, str]] = asyncio.get_running_loop().create_future()
        self._waiting[recovery_id] = future
        self._hold_for_approval(state, heal, recovery_id)
        self._recorder.approval_required(
            {
                "service": state.name,
                "recovery_id": recovery_id,
                **fields,
                "timeout_seconds": timeout_s,
            }
        )
        try:
            approved, who = await asyncio.wait_for(future, timeout_s)
        except asyncio.CancelledError:
            if future.cancelled() and not _current_task_cancelling():
                return RecoveryOutcome.INTERRUPTED
            raise
        except TimeoutError:
            self._recorder.approval_expired(state.name, recovery_id)
            return RecoveryOutcome.EXPIRED
        finally:
            self._waiting.pop(recovery_id, None)
        self._recorder.approval_decided(state.name, recovery_id, approved, who)
        if not approved:
            return RecoveryOutcome.REJECTED
        self._services().apply_transition(
            state.set_status(ServiceStatus.RECOVERING, f"approved by {who}")
        )
        return None

    def _hold_for_approval(self, state: ServiceState, heal: HealState, recovery_id: int) -> None:
        reason = f"waiting for operator approval of recovery {recovery_id}"
        heal.held_reason = reason
        self._services().apply_transition(state.set_status(ServiceStatus.HELD, reason))

    def cancel_all(self) -> None:
        """Nobody will approve during shutdown: end the waits now."""
        for future in self._waiting.values():
            future.cancel()


def refusal_detail(outcome: RecoveryOutcome, timeout_s: float) -> str:
    if outcome is RecoveryOutcome.EXPIRED:
        return f"nobody approved the recovery within {timeout_s:g}s"
    return "an operator rejected the recovery"


def _current_task_cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0

"""What the heal side records and tells: the one place it writes history,
publishes events, counts metrics and logs.

The heal side never imports the store or the metrics: it records through the
``RecoveryJournal`` and ``HealMetrics`` ports declared here, which
``medic.store.Store`` and ``medic.tell.metrics.Metrics`` implement. Every
write happens before the event that reports it is published.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from medic.core.bus import EventBus
from medic.core.clock import iso_mono
from medic.core.logging import get_logger
from medic.core.records import ContainerEvidence, RecoveryStepEntry
from medic.core.vocabulary import FailureType, HoldReason, RecoveryOutcome
from medic.heal.steps import StepRun
from medic.host.subprocesses import SessionTracker

log = get_logger("RecoveryEngine")


class AttemptRecord(Protocol):
    """A recovery's start as the history keeps it (``medic.store.RecoveryStart``)."""

    @property
    def service(self) -> str: ...
    @property
    def at(self) -> float: ...
    @property
    def trigger(self) -> str: ...
    @property
    def dry_run(self) -> bool: ...
    @property
    def outcome(self) -> str: ...


class AuditRecord(Protocol):
    """An audit entry as the history keeps it (``medic.store.AuditEntry``)."""

    @property
    def at(self) -> datetime: ...
    @property
    def kind(self) -> str: ...
    @property
    def service(self) -> str | None: ...
    @property
    def data(self) -> Mapping[str, Any]: ...


class RecoveryJournal(Protocol):
    """Where recoveries and the heal side's audit trail are kept (the store).

    Its writes never raise: one the disk refuses waits in memory and its reads
    see it (``medic.store.backlog``), so healing goes on on a full disk.
    """

    def start_recovery(
        self,
        service: str,
        failure_type: str | None,
        playbook: str,
        trigger: str,
        *,
        dry_run: bool,
        facts: dict[str, Any],
    ) -> int:
        """A recovery as started (``running``); its id."""

    def add_recovery_step(self, recovery_id: int, step: RecoveryStepEntry) -> None: ...

    def set_recovery_status(
        self, recovery_id: int, status: str, detail: str | None = None
    ) -> None: ...

    def set_recovery_evidence(self, recovery_id: int, evidence: ContainerEvidence) -> None:
        """What the container showed before the recovery acted on it."""

    def audit(self, kind: str, service: str | None = None, **data: Any) -> None: ...

    def step_sessions(self, *, recovery_id: int) -> SessionTracker: ...

    def recovery(self, recovery_id: int) -> object | None: ...

    def recovery_starts(self, since: float) -> Sequence[AttemptRecord]:
        """The recoveries started since ``since``, oldest first."""

    def audit_entries(
        self, kind: str | None = None, limit: int = 100, service: str | None = None
    ) -> Sequence[AuditRecord]: ...


class HealMetrics(Protocol):
    def recovery_ended(
        self, service: str, playbook: str, outcome: str, duration_s: float
    ) -> None: ...

    def recovery_held(self, reason: str) -> None: ...

    def set_circuit_open(self, service: str, is_open: bool) -> None: ...


class HealRecorder:
    def __init__(self, journal: RecoveryJournal, bus: EventBus, metrics: HealMetrics) -> None:
        self.journal = journal
        self.bus = bus
        self.metrics = metrics

    # holds ------------------------------------------------------------------------

    def held(self, service: str, reason: HoldReason, detail: str, *, publish: bool) -> None:
        self.metrics.recovery_held(reason)
        self.journal.audit("recovery.held", service, reason=reason, detail=detail)
        if publish:
            self.bus.publish("recovery.held", service=service, reason=reason, detail=detail)
        log.info(
            "recovery.held",
            message="Recovery held",
            service=service,
            reason=reason.value,
            detail=detail,
        )

    def host_hold_entered(self, detail: str) -> None:
        reason = HoldReason.BLAST_RADIUS
        self.journal.audit("recovery.held", None, reason=reason, detail=detail)
        self.bus.publish("recovery.held", service=None, reason=reason, detail=detail)
        log.error(
            "host_hold.entered",
            message="Automatic recovery held host-wide",
            reason=reason.value,
            detail=detail,
        )

    def host_hold_lifted(self, detail: str) -> None:
        reason = HoldReason.BLAST_RADIUS
        self.journal.audit("recovery.resumed", None, reason=reason, detail=detail)
        self.bus.publish("recovery.resumed", reason=reason, detail="failing fraction dropped")
        log.warning(
            "host_hold.lifted",
            message="Automatic recovery resumed: the failing fraction dropped",
        )

    # circuits ---------------------------------------------------------------------

    def circuit_opened(
        self,
        service: str,
        detail: str,
        failure_type: FailureType | None,
        probation_at: float | None,
        cooldown_s: float | None,
    ) -> None:
        after = "never (until an operator resets it)" if cooldown_s is None else f"{cooldown_s:g}s"
        self.metrics.set_circuit_open(service, True)
        self.journal.audit("circuit.opened", service, detail=detail, probation_after=after)
        self.bus.publish(
            "circuit.opened",
            service=service,
            detail=detail,
            failure_type=failure_type,
            probation_at=iso_mono(probation_at),
        )
        log.warning(
            "circuit.opened",
            message="Circuit opened: no more automatic recovery",
            service=service,
            detail=detail,
            probation_after=after,
        )

    def circuit_reopened(self, service: str, detail: str | None) -> None:
        """A circuit open before the daemon restarted is open again."""
        self.metrics.set_circuit_open(service, True)
        log.warning(
            "circuit.restored",
            message="Circuit still open from before the restart",
            service=service,
            detail=detail,
        )

    def circuit_probation(self, service: str, recovery_id: int) -> None:
        self.bus.publish("circuit.probation", service=service, recovery_id=recovery_id)
        log.warning("circuit.probation", message="Circuit probation: one attempt", service=service)

    def circuit_closed(self, service: str, reason: str) -> None:
        self.metrics.set_circuit_open(service, False)
        self.journal.audit("circuit.closed", service, reason=reason)
        self.bus.publish("circuit.closed", service=service, reason=reason)
        log.info("circuit.closed", message="Circuit closed", service=service, reason=reason)

    def reset(self, service: str, who: str, token: str | None = None) -> None:
        """An operator's reset, recorded so that a restart does not count the attempts again
        (``token``: the name of the API token used, never its value)."""
        self.journal.audit("operator.reset", service, who=who, token=token)

    # recoveries -------------------------------------------------------------------

    def recovery_started(self, fields: dict[str, Any]) -> None:
        """``fields``: service, playbook, recovery_id, failure_type, trigger, dry_run."""
        log.warning("recovery.started", message="Recovery started", **fields)
        self.bus.publish("recovery.started", **fields)

    def step(self, service: str, recovery_id: int, position: int, phase: str, out: StepRun) -> None:
        entry = RecoveryStepEntry(
            position, phase, out.action, out.description, out.outcome,
            out.detail, out.output, out.started_at, out.duration_s,
        )  # fmt: skip
        self.journal.add_recovery_step(recovery_id, entry)
        self.bus.publish(
            "recovery.step",
            service=service,
            recovery_id=recovery_id,
            phase=phase,
            action=out.action,
            outcome=out.outcome,
            detail=out.detail,
            duration_seconds=round(out.duration_s, 4),
        )
        log.info(
            "recovery.step",
            message="Recovery step",
            service=service,
            action=out.action,
            outcome=out.outcome.value,
            detail=out.detail,
            duration_s=round(out.duration_s, 3),
        )

    def evidence_kept(self, service: str, recovery_id: int, evidence: ContainerEvidence) -> None:
        self.journal.set_recovery_evidence(recovery_id, evidence)
        log.info(
            "recovery.evidence_kept",
            message="Evidence kept: what the container showed before the recovery acted",
            service=service,
            recovery_id=recovery_id,
            container=evidence.container,
            exit_code=evidence.exit_code,
            oom_killed=evidence.oom_killed,
            log_lines=evidence.log_lines,
            notes="; ".join(evidence.notes) or None,
        )

    def recovery_ended(
        self, payload: dict[str, Any], outcome: RecoveryOutcome, duration_s: float
    ) -> None:
        """``payload``: service, playbook, recovery_id, outcome, detail, duration_seconds."""
        self.journal.set_recovery_status(payload["recovery_id"], outcome, payload["detail"])
        self.metrics.recovery_ended(payload["service"], payload["playbook"], outcome, duration_s)

    def recovery_told(
        self, payload: dict[str, Any], outcome: RecoveryOutcome, held: bool = False
    ) -> None:
        """Publish and log how a recovery ended (after the service's status
        changed); one the fleet stopped before a step (``held``) is told by its
        hold (``recovery.held``), not as a failure."""
        service, playbook = payload["service"], payload["playbook"]
        if held:
            self.bus.publish("recovery.finished", **payload)
        elif outcome is RecoveryOutcome.SUCCEEDED:
            self.bus.publish("recovery.succeeded", **payload)
            log.info(
                "recovery.succeeded",
                message="Recovery succeeded",
                service=service,
                playbook=playbook,
                duration_s=payload["duration_seconds"],
            )
        elif outcome in _FAILED:
            self.bus.publish("recovery.failed", reason=outcome, **payload)
            log.error(
                "recovery.failed",
                message="Recovery failed",
                service=service,
                playbook=playbook,
                outcome=outcome.value,
                detail=payload["detail"],
            )
        else:
            self.bus.publish("recovery.finished", **payload)

    # approval ---------------------------------------------------------------------

    def approval_required(self, fields: dict[str, Any]) -> None:
        """``fields``: service, recovery_id, playbook, failure_type, timeout_seconds."""
        self.journal.set_recovery_status(fields["recovery_id"], RecoveryOutcome.WAITING_APPROVAL)
        self.bus.publish("recovery.approval_required", **fields)
        log.warning(
            "recovery.approval_required",
            message="Recovery waits for approval",
            service=fields["service"],
            playbook=fields["playbook"],
            recovery_id=fields["recovery_id"],
            timeout_s=fields["timeout_seconds"],
        )

    def approval_answered(self, recovery_id: int, approved: bool) -> None:
        """The operator's answer, recorded before the waiting recovery resumes."""
        status = RecoveryOutcome.RUNNING if approved else RecoveryOutcome.REJECTED
        self.journal.set_recovery_status(recovery_id, status)

    def approval_decided(self, service: str, recovery_id: int, approved: bool, who: str) -> None:
        kind = "recovery.approved" if approved else "recovery.rejected"
        self.journal.audit(kind, service, recovery_id=recovery_id, who=who)
        if approved:
            self.journal.set_recovery_status(recovery_id, RecoveryOutcome.RUNNING)

    def approval_expired(self, service: str, recovery_id: int) -> None:
        self.journal.audit("recovery.expired", service, recovery_id=recovery_id)

    # notify steps -----------------------------------------------------------------

    def notification(self, service: str, event: str, data: dict[str, Any]) -> None:
        text = str(data.get("message") or "")
        log.warning(
            "recovery.notification",
            message=f"Notification {event}: {text}".rstrip(": "),
            service=service,
            notify_event=event,
            notice=text,
        )
        self.bus.publish(event, **{"service": service, **data})

    def shutdown_wait(self, running: Sequence[str], grace_s: float) -> None:
        log.info(
            "recovery.shutdown_wait",
            message="Waiting for running recoveries",
            count=len(running),
            grace_s=grace_s,
        )


_FAILED = frozenset(
    {
        RecoveryOutcome.FAILED,
        RecoveryOutcome.UNRESOLVED,
        RecoveryOutcome.INTERRUPTED,
        RecoveryOutcome.REJECTED,
        RecoveryOutcome.EXPIRED,
    }
)

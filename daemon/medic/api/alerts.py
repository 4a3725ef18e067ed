"""The Alertmanager webhook receiver behind ``POST /api/v1/alerts``.

Prometheus Alertmanager posts its webhook payload (version 4); each firing
alert whose ``service`` label names a watched service asks for that service's
recovery, with the ``failure_type`` label when it has one. The request goes
through the recovery engine's guarded path, so an alert gets no more than the
checks would: a running recovery, an open circuit, backoff, a failing
dependency or a host-wide hold keep it from starting, and the answer says
which. Nothing is dropped silently: resolved alerts and alerts without a
``service`` label are listed as ignored, unknown services as unknown.

Alertmanager config (the token is the API's bearer token)::

    receivers:
      - name: medic
        webhook_configs:
          - url: http://127.0.0.1:8321/api/v1/alerts
            http_config: {authorization: {credentials_file: /etc/alertmanager/medic-token}}
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medic.core.errors import MedicError
from medic.core.logging import get_logger
from medic.core.vocabulary import FailureType, Trigger
from medic.heal.admission import RecoveryRequest

if TYPE_CHECKING:
    from medic.orchestrator import ControlPlaneOrchestrator

log = get_logger("Alerts")

SERVICE_LABEL = "service"
FAILURE_TYPE_LABEL = "failure_type"
TRIGGER = Trigger.ALERT

RequestRecovery = Callable[[str, FailureType | None], RecoveryRequest]


class AlertPayloadError(MedicError):
    """The body is not an Alertmanager webhook payload; every problem is listed."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("not an Alertmanager webhook payload: " + "; ".join(problems))


class Alert(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(
        description="`service` names the medic service; `failure_type` (optional) picks"
        " the playbook."
    )
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: str | None = Field(default=None, alias="startsAt")
    fingerprint: str | None = None


class AlertPayload(BaseModel):
    """Alertmanager's webhook body (version 4). Only the fields listed are read; the
    others Alertmanager sends (groupLabels, commonLabels, commonAnnotations,
    externalURL, truncatedAlerts, endsAt...) are accepted and ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    version: str | None = None
    status: Literal["firing", "resolved"] | None = None
    receiver: str | None = None
    group_key: str | None = Field(default=None, alias="groupKey")
    alerts: list[Alert]


def parse_payload(body: Any) -> AlertPayload:
    try:
        return AlertPayload.model_validate(body)
    except ValidationError as exc:
        raise AlertPayloadError([_problem(e) for e in exc.errors()]) from None


def _problem(error: Any) -> str:
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
    return f"{where.lstrip('.') or 'body'}: {error['msg']}"


@dataclass
class AlertsReport:
    """The response body: what each alert led to."""

    accepted: list[dict[str, Any]] = field(default_factory=list)
    held: list[dict[str, Any]] = field(default_factory=list)
    unknown_services: list[str] = field(default_factory=list)
    ignored: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "held": self.held,
            "unknown_services": self.unknown_services,
            "ignored": self.ignored,
        }

    def ignore(self, alert: Alert, reason: str, detail: str | None = None) -> None:
        entry: dict[str, Any] = {"labels": alert.labels, "reason": reason}
        if detail is not None:
            entry["detail"] = detail
        self.ignored.append(entry)

    def record(self, result: RecoveryRequest) -> None:
        if result.started or result.pending:
            entry = {
                "service": result.service,
                "failure_type": result.failure_type.value,
                "recovery_id": result.recovery_id,
            }
            if result.pending:
                entry["detail"] = result.pending
            self.accepted.append(entry)
        else:
            self.held.append(
                {
                    "service": result.service,
                    "failure_type": result.failure_type.value,
                    "reason": result.reason,
                    "detail": result.detail,
                }
            )


def receive_alerts(
    orch: ControlPlaneOrchestrator, body: Any, who: Mapping[str, str | None]
) -> dict[str, Any]:
    """Act on one Alertmanager post from ``who`` (the caller and its token's
    name, for the audit trail); the API's response body.

    Raises ``AlertPayloadError`` when the body is not Alertmanager's payload.
    """
    payload = parse_payload(body)

    def request(service: str, failure_type: FailureType | None) -> RecoveryRequest:
        return orch.engine.request_recovery(service, failure_type, trigger=TRIGGER)

    report = handle_alerts(payload, orch.monitor.states(), request)
    orch.store.audit(
        "operator.alerts",
        None,
        **who,
        receiver=payload.receiver,
        group_key=payload.group_key,
        accepted=[(e["service"], e["recovery_id"]) for e in report.accepted],
        held=[(e["service"], e["reason"]) for e in report.held],
        unknown_services=report.unknown_services,
        ignored=len(report.ignored),
    )
    log_report(payload, report)
    return report.as_dict()


def handle_alerts(
    payload: AlertPayload, services: Collection[str], request_recovery: RequestRecovery
) -> AlertsReport:
    """Decide every alert of the payload, in order."""
    report = AlertsReport()
    for alert in payload.alerts:
        _handle_one(alert, services, request_recovery, report)
    return report


def _handle_one(
    alert: Alert,
    services: Collection[str],
    request_recovery: RequestRecovery,
    report: AlertsReport,
) -> None:
    if alert.status == "resolved":
        report.ignore(alert, "resolved")
        return
    service = alert.labels.get(SERVICE_LABEL)
    if not service:
        report.ignore(alert, "no service label")
        return
    if service not in services:
        if service not in report.unknown_services:
            report.unknown_services.append(service)
        return
    raw_type = alert.labels.get(FAILURE_TYPE_LABEL)
    try:
        failure_type = FailureType(raw_type) if raw_type else None
    except ValueError:
        known = ", ".join(t.value for t in FailureType)
        report.ignore(alert, "unknown failure_type", f"{raw_type!r} is not one of: {known}")
        return
    report.record(request_recovery(service, failure_type))


def log_report(payload: AlertPayload, report: AlertsReport) -> None:
    context = dict(receiver=payload.receiver, group_key=payload.group_key)
    for entry in report.accepted:
        log.warning("alert.recovery_started", message="Alert starts a recovery", **context, **entry)
    for entry in report.held:
        log.info("alert.recovery_held", message="Alert's recovery held", **context, **entry)
    if report.unknown_services:
        log.warning(
            "alert.unknown_services",
            message="Alert names services medic does not watch",
            **context,
            unknown_services=report.unknown_services,
        )

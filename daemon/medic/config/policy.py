"""``monitoring.recovery`` and ``services.X.recovery_policy``: the guardrails' numbers."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from medic.config.section import Section
from medic.config.types import Duration


class BackoffConfig(Section):
    initial: Duration = 5.0
    factor: float = Field(default=2.0, ge=1.0, le=10.0)
    max: Duration = 300.0
    jitter: float = Field(default=0.1, ge=0.0, le=1.0)
    """Each delay is spread by up to this fraction either way."""


class RecoveryPolicy(Section):
    max_attempts: int = Field(default=3, ge=1, le=1000)
    window: Duration = 600.0
    backoff: BackoffConfig = BackoffConfig()
    reset_after: Duration = 600.0
    circuit_cooldown: Duration = 1800.0
    circuit_cooldown_max: Duration = 86400.0
    concurrency: int = Field(default=2, ge=1, le=64)
    budget: int | None = Field(default=None, ge=1)
    """Host-wide recoveries allowed per ``window``; unset = no host-wide budget."""
    max_failing_fraction: float = Field(default=0.5, gt=0.0, le=1.0)
    respect_manual_stop: bool = True
    correlation_window: Duration = 0.1
    """Failures that start within this long of each other are judged together
    (blast radius) before the first recovery starts."""


HOST_WIDE_POLICY_KEYS = (
    "concurrency",
    "budget",
    "max_failing_fraction",
    "correlation_window",
)
"""Keys of ``monitoring.recovery`` that speak of the whole host, not one service."""


class BackoffOverride(Section):
    initial: Duration | None = None
    factor: float | None = Field(default=None, ge=1.0, le=10.0)
    max: Duration | None = None
    jitter: float | None = Field(default=None, ge=0.0, le=1.0)


class ServicePolicy(Section):
    """``services.X.recovery_policy``: any per-service key of ``monitoring.recovery``
    for this service alone; what it leaves out comes from ``monitoring.recovery``."""

    max_attempts: int | None = Field(default=None, ge=1, le=1000)
    window: Duration | None = None
    backoff: BackoffOverride | None = None
    reset_after: Duration | None = None
    circuit_cooldown: Duration | None = None
    circuit_cooldown_max: Duration | None = None
    respect_manual_stop: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _not_host_wide(cls, data: Any) -> Any:
        if isinstance(data, dict):
            host_wide = [k for k in HOST_WIDE_POLICY_KEYS if k in data]
            if host_wide:
                raise ValueError(
                    f"{', '.join(host_wide)} is host-wide: set it in monitoring.recovery"
                )
        return data

    def over(self, policy: RecoveryPolicy) -> RecoveryPolicy:
        """``policy`` with this service's keys put over it."""
        update: dict[str, Any] = self.model_dump(exclude_none=True, exclude={"backoff"})
        if self.backoff is not None:
            backoff = self.backoff.model_dump(exclude_none=True)
            update["backoff"] = policy.backoff.model_copy(update=backoff)
        return policy.model_copy(update=update)

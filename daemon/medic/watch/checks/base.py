"""The check plugin interface: result, target and the abstract probe.

A plugin's options model (what its ``check:`` may say) lives in
``medic.config.checks``; the plugin names it as its ``options_model``.

A check only probes and returns a result. The runner (``medic.watch.runner``) owns
timeouts, timing, metrics, logging context and history, so no plugin repeats
them. Exceptions a probe raises are classified by ``medic.watch.classify``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from medic.config.checks import CheckOptions
from medic.core.vocabulary import FailureType

if TYPE_CHECKING:
    from medic.host.resources import Resources


@dataclass(frozen=True)
class CheckResult:
    healthy: bool
    detail: str
    failure_type: FailureType | None = None
    definitive: bool = False
    """The failure is certain (the container exited, the process is gone): it
    makes the service unhealthy at once instead of waiting for
    ``failure_threshold`` consecutive failures, which exist for flaky probes."""
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def ok(cls, detail: str = "ok", **data: Any) -> CheckResult:
        return cls(healthy=True, detail=detail, data=data)

    @classmethod
    def fail(
        cls, failure_type: FailureType, detail: str, *, definitive: bool = False, **data: Any
    ) -> CheckResult:
        return cls(
            healthy=False,
            detail=detail,
            failure_type=failure_type,
            definitive=definitive,
            data=data,
        )


@dataclass(frozen=True)
class CheckTarget:
    """What a check knows about the service it probes."""

    service: str
    container: str | None = None
    unit: str | None = None
    timeout_s: float | None = None
    """The runner's timeout for this check, for checks that keep a deadline of their own."""


OptionsT = TypeVar("OptionsT", bound=CheckOptions)


class Check(ABC, Generic[OptionsT]):
    """One probe of one service. Instances live as long as the service config."""

    yaml_name: ClassVar[str]
    """The YAML ``type`` the plugin is registered by (its options model's literal)."""
    options_model: ClassVar[type[CheckOptions]]

    def __init__(self, options: OptionsT, target: CheckTarget, resources: Resources) -> None:
        self.options = options
        self.target = target
        self.resources = resources

    @abstractmethod
    async def probe(self) -> CheckResult:
        """Probe once. May raise; the runner classifies the exception."""

    async def close(self) -> None:
        """Release what the check holds (connections); called when the service goes away."""

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
    from medic.config.models import ServiceSpec
    from medic.host.resources import Resources

REFINE_TIMEOUT_S = 5.0
"""How long a refiner may look (inspect a container, ask systemd) before the
check's own verdict stands."""


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
    operator_stop: bool | None = None
    """Whether an operator stopped the service on purpose (``systemctl stop``):
    True leaves it alone (with ``respect_manual_stop``) until the check says
    False, when it runs again; None says nothing of it (most checks)."""

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


class Refiner(ABC):
    """A check plugin's second look at a service whose own check failed.

    A plugin that knows something the service names (its ``container:``,
    ``unit:`` or ``process:``) lends its verdict to another check's failure:
    an exited container is a certain crash, whatever the HTTP probe saw. The
    runner (``medic.watch.runner``) applies every registered refiner, in
    registry order, while the result is still a failure; each keeps its own
    time bound and never raises.
    """

    @abstractmethod
    def applies(self, spec: ServiceSpec) -> bool:
        """Whether the service names what this refiner looks at (and its own
        check is not the plugin's, which has already looked)."""

    @abstractmethod
    async def refine(
        self, spec: ServiceSpec, result: CheckResult, resources: Resources
    ) -> CheckResult:
        """The failed ``result`` seen with what the plugin knows; ``result``
        itself when that changes nothing."""


OptionsT = TypeVar("OptionsT", bound=CheckOptions)


class Check(ABC, Generic[OptionsT]):
    """One probe of one service. Instances live as long as the service config."""

    yaml_name: ClassVar[str]
    """The YAML ``type`` the plugin is registered by (its options model's literal)."""
    options_model: ClassVar[type[CheckOptions]]
    refiner: ClassVar[Refiner | None] = None
    """The plugin's second look at services whose own check failed, if it has one."""

    def __init__(self, options: OptionsT, target: CheckTarget, resources: Resources) -> None:
        self.options = options
        self.target = target
        self.resources = resources

    @abstractmethod
    async def probe(self) -> CheckResult:
        """Probe once. May raise; the runner classifies the exception."""

    async def close(self) -> None:
        """Release what the check holds (connections); called when the service goes away."""

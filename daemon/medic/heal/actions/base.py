"""The action plugin interface shared by playbook steps and workflow steps.

An action does one thing to the host (restart a container, run a command) and
returns an ``ActionResult``. The step runner (``medic.heal.steps``) owns timeouts,
retries, dry-run, timing and history; actions do not repeat them. An action
is told the service it acts for through ``ActionContext`` so that targets
default to the service's own container/unit/process. A plugin's options model
(what its step may say) lives in ``medic.config.actions``; the plugin names it
as its ``options_model``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from medic.config.actions import ActionOptions
from medic.core.errors import MedicError

if TYPE_CHECKING:
    from medic.config.checks import CheckOptions
    from medic.host.resources import Resources
    from medic.host.subprocesses import SessionTracker
    from medic.watch.checks.base import CheckResult


@dataclass(frozen=True)
class ServiceTarget:
    """The service a step acts for, with what runs it."""

    name: str
    container: str | None = None
    unit: str | None = None
    check: CheckOptions | None = None
    """The service's check options: ``reconnect`` takes its database from a postgres check."""
    start_command: tuple[str, ...] | None = None
    stop_timeout: float | None = None
    """The service's own stop timeout for its container, if its config has one."""


@dataclass
class ActionContext:
    resources: Resources
    state_dir: Path
    service: ServiceTarget | None = None
    failure_type: str | None = None
    dry_run: bool = False
    run_check: Callable[[], Awaitable[CheckResult]] | None = None
    """Probe the service once (through the runner): used by ``wait_healthy``."""
    emit: Callable[[str, dict[str, Any]], Awaitable[None]] | None = None
    """Publish an event (log, history, webhooks): used by ``notify``."""
    facts: dict[str, Any] = field(default_factory=dict)
    """What the failure looked like (the check's detail and data) for notify/records."""
    sessions: SessionTracker | None = None
    """Records the sessions of the commands a step runs (``run_command``), so that
    the next start ends those a crash left running."""


@dataclass(frozen=True)
class ActionResult:
    ok: bool
    detail: str
    output: str = ""
    """Tail of what the action printed (commands), for the history."""
    data: dict[str, Any] = field(default_factory=dict)


class ActionError(MedicError):
    """The action cannot run with what it was given (e.g. no container to restart)."""


OptionsT = TypeVar("OptionsT", bound=ActionOptions)


class Action(ABC, Generic[OptionsT]):
    yaml_name: ClassVar[str]
    """The YAML ``action`` name the plugin is registered by (its options model's literal)."""
    options_model: ClassVar[type[ActionOptions]]
    default_timeout_s: ClassVar[float] = 60.0
    """The bound on a playbook step without its own ``timeout`` (a workflow step
    without one is bounded by the workflow's ``timeout`` instead, see ``medic.heal.steps``)."""
    manages_own_timeout: ClassVar[bool] = False
    """The action enforces ``options.timeout`` (or ``default_timeout_s``) itself and
    reports running out of time as a result; the step runner does not cut it off."""
    ends_by_itself: ClassVar[bool] = False
    """The action takes a time it was given (``sleep``): no default timeout cuts it
    short, only an explicit step ``timeout`` or the workflow's ``timeout``."""

    def __init__(self, options: OptionsT) -> None:
        self.options = options

    @property
    def timeout_s(self) -> float:
        """The step's own ``timeout``, else ``default_timeout_s``: the bound an action
        that ``manages_own_timeout`` keeps itself."""
        return self.options.timeout or self.default_timeout_s

    def describe(self, ctx: ActionContext) -> str:
        """What the step would do, with its resolved target (for dry runs and logs)."""
        return self.yaml_name

    @abstractmethod
    async def run(self, ctx: ActionContext) -> ActionResult:
        """Do it. May raise; the step runner records the exception as a failure."""

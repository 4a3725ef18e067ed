"""The config schema as typed models, and the resolved view the daemon runs on.

Everything in ``control-plane/config.yaml`` and ``recovery_playbooks/*.yaml``
is parsed here once. Loading and error reporting (file:line for every
problem) live in ``medic.config.load``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from medic.config.actions import ACTION_OPTIONS, ActionOptions, StepRetry
from medic.config.checks import CHECK_OPTIONS, CheckOptions
from medic.config.fleet import FleetConfig
from medic.config.types import Argv, Duration, RelPath
from medic.core.errors import ConfigIssue
from medic.core.vocabulary import FailureType

if TYPE_CHECKING:
    CheckSpec = CheckOptions
    StepSpec = ActionOptions
else:
    CheckSpec = Annotated[Union[CHECK_OPTIONS], Field(discriminator="type")]  # noqa: UP007
    StepSpec = Annotated[Union[ACTION_OPTIONS], Field(discriminator="action")]  # noqa: UP007


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetentionConfig(Section):
    max_age: Duration = 30 * 86400.0
    max_rows: int = Field(default=100_000, ge=100)


class DaemonConfig(Section):
    state_dir: RelPath = Path("../.medic-state")
    log_format: Literal["auto", "console", "json"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    shutdown_grace: Duration = 5.0
    """How long SIGTERM waits for running recoveries (and workflow runs) before
    cancelling them (they end ``interrupted``); the API listener closes at once."""
    workflow_concurrency: int = Field(default=4, ge=1)
    """Workflow runs executing at once on the host; more wait, by priority."""
    retention: RetentionConfig = RetentionConfig()


_LISTEN = re.compile(r"^(?P<host>\[[0-9a-fA-F:]+\]|[^:\s]+):(?P<port>\d{1,5})$")


class ApiConfig(Section):
    enabled: bool = True
    listen: str = "127.0.0.1:8321"
    token_env: str | None = None
    token_file: RelPath | None = None
    auth_reads: bool = False
    max_body_bytes: int = Field(default=1 << 20, ge=1024)

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        match = _LISTEN.match(value)
        if not match or not 0 < int(match.group("port")) < 65536:
            raise ValueError(f"listen must be HOST:PORT, e.g. 127.0.0.1:8321 (got {value!r})")
        return value

    @property
    def host(self) -> str:
        match = _LISTEN.match(self.listen)
        assert match is not None
        return match.group("host").strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])


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


class MonitoringConfig(Section):
    health_check_interval: Duration = Field(default=10.0, gt=0)
    timeout: Duration = Field(default=5.0, gt=0)
    failure_threshold: int = Field(default=3, ge=1, le=100)
    success_threshold: int = Field(default=1, ge=1, le=100)
    start_period: Duration = 0.0
    recovery: RecoveryPolicy = RecoveryPolicy()
    dry_run: bool = False


class ProcessConfig(Section):
    """A program medic starts and supervises itself, or adopts via ``pidfile``."""

    command: Argv | None = Field(default=None, min_length=1)
    cwd: RelPath | None = None
    env: dict[str, str] = Field(default_factory=dict)
    stop_timeout: Duration = 10.0
    pidfile: RelPath | None = None

    @model_validator(mode="after")
    def _command_or_pidfile(self) -> ProcessConfig:
        if self.command is None and self.pidfile is None:
            raise ValueError("a process needs a 'command' to start it or a 'pidfile' to adopt it")
        return self


class ServiceConfig(Section):
    description: str = ""
    check: CheckSpec
    interval: Duration | None = Field(default=None, gt=0)
    timeout: Duration | None = Field(default=None, gt=0)
    failure_threshold: int | None = Field(default=None, ge=1, le=100)
    success_threshold: int | None = Field(default=None, ge=1, le=100)
    start_period: Duration | None = None
    container: str | None = None
    unit: str | None = None
    process: ProcessConfig | None = None
    start_command: Argv | None = Field(default=None, min_length=1)
    """Argv that starts the service when it is down, for one medic neither runs
    nor finds as a container or unit (``[pg_ctlcluster, "15", main, start]``);
    used by the ``start_service`` action."""
    depends_on: list[str] = Field(default_factory=list)
    recovery: dict[FailureType, str] = Field(default_factory=dict)
    """Failure type -> playbook name; overrides matching by ``failure_types``."""
    enabled: bool = True
    shared: bool = False
    """With ``fleet:``: one host at a time heals it (a dependency every host sees)."""


class ScheduleConfig(Section):
    interval: Duration | None = Field(default=None, gt=0)
    cron: str | None = None
    at: str | None = None
    timezone: str | None = None
    misfire_grace: Duration = 60.0
    """A run missed by less than this (daemon busy or down) still runs once."""

    @model_validator(mode="after")
    def _exactly_one(self) -> ScheduleConfig:
        given = [k for k in ("interval", "cron", "at") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("a schedule needs exactly one of 'interval', 'cron' or 'at'")
        return self


class RetryPolicy(StepRetry):
    """A workflow's ``retry_policy``: the default for steps without their own ``retry``."""


class WorkflowConfig(Section):
    description: str = ""
    type: Literal["async", "sync"] = "async"
    priority: Literal["high", "normal", "low"] = "normal"
    timeout: Duration | None = None
    retry_policy: RetryPolicy = RetryPolicy()
    schedule: ScheduleConfig | None = None
    enabled: bool = True
    steps: list[StepSpec] = Field(default_factory=list)


class WebhookConfig(Section):
    name: str
    url: str = Field(pattern=r"^https?://")
    events: list[str] = Field(default_factory=lambda: ["*"])
    secret_env: str | None = None
    secret_file: RelPath | None = None
    timeout: Duration = 5.0
    max_retries: int = Field(default=5, ge=0, le=50)
    backoff: BackoffConfig = BackoffConfig(initial=1.0, max=60.0, jitter=0.2)
    """Wait between delivery attempts (5xx, timeouts, refused connections)."""
    headers: dict[str, str] = Field(default_factory=dict)


class NotificationsConfig(Section):
    webhooks: list[WebhookConfig] = Field(default_factory=list)
    queue_size: int = Field(default=1000, ge=10)
    """Events waiting per webhook; when full, the oldest is dropped (and counted)."""

    @field_validator("webhooks")
    @classmethod
    def _unique_names(cls, hooks: list[WebhookConfig]) -> list[WebhookConfig]:
        names = [hook.name for hook in hooks]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"webhook names must be unique; repeated: {', '.join(twice)}")
        return hooks


class Config(Section):
    daemon: DaemonConfig = DaemonConfig()
    api: ApiConfig = ApiConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    playbooks_dir: RelPath = Path("../recovery_playbooks")
    services: dict[str, ServiceConfig] = Field(default_factory=dict)
    workflows: dict[str, WorkflowConfig] = Field(default_factory=dict)
    notifications: NotificationsConfig = NotificationsConfig()
    fleet: FleetConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_section_is_absent(cls, data: Any) -> Any:
        # `services:` with every entry commented out is YAML null: the same as leaving it out.
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data


class Playbook(Section):
    name: str
    description: str = ""
    failure_types: list[FailureType] = Field(default_factory=list)
    steps: list[StepSpec] = Field(min_length=1)
    on_failure: list[StepSpec] = Field(default_factory=list)
    approval: Literal["none", "required"] = "none"
    approval_timeout: Duration = 900.0


@dataclass(frozen=True)
class ServiceSpec:
    """A service with every default from ``monitoring:`` filled in."""

    name: str
    check: CheckOptions
    interval_s: float
    timeout_s: float
    failure_threshold: int
    success_threshold: int
    start_period_s: float
    policy: RecoveryPolicy
    container: str | None = None
    unit: str | None = None
    process: ProcessConfig | None = None
    start_command: tuple[str, ...] | None = None
    depends_on: tuple[str, ...] = ()
    recovery: dict[FailureType, str] = field(default_factory=dict)
    description: str = ""
    shared: bool = False

    @classmethod
    def resolve(cls, name: str, svc: ServiceConfig, mon: MonitoringConfig) -> ServiceSpec:
        return cls(
            name=name,
            check=svc.check,
            interval_s=_first(svc.interval, mon.health_check_interval),
            timeout_s=_first(svc.check.timeout, svc.timeout, mon.timeout),
            failure_threshold=_first(svc.failure_threshold, mon.failure_threshold),
            success_threshold=_first(svc.success_threshold, mon.success_threshold),
            start_period_s=_start_period(svc, mon),
            policy=mon.recovery,
            container=svc.container,
            unit=svc.unit,
            process=svc.process,
            start_command=tuple(svc.start_command) if svc.start_command else None,
            depends_on=tuple(svc.depends_on),
            recovery=dict(svc.recovery),
            description=svc.description,
            shared=svc.shared,
        )


SUPERVISED_START_PERIOD_S = 5.0
"""Grace for a program medic starts itself, unless a start_period is given:
it cannot answer the moment it is spawned. A crash still counts at once."""


def _start_period(svc: ServiceConfig, mon: MonitoringConfig) -> float:
    if svc.start_period is not None:
        return svc.start_period
    if "start_period" in mon.model_fields_set:
        return mon.start_period
    if svc.process is not None and svc.process.command is not None:
        return SUPERVISED_START_PERIOD_S
    return mon.start_period


def _first(*values: Any) -> Any:
    return next(v for v in values if v is not None)


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config with its playbooks: what the daemon runs on."""

    path: Path
    model: Config
    services: dict[str, ServiceSpec]
    playbooks: dict[str, Playbook]
    warnings: tuple[ConfigIssue, ...] = ()
    """Secrets the config names that were not there when it was loaded."""

    @property
    def state_dir(self) -> Path:
        return self.model.daemon.state_dir

    @property
    def dry_run(self) -> bool:
        return self.model.monitoring.dry_run

    def summary(self) -> str:
        m = self.model
        counts = (
            (len(self.services), "service"),
            (len(m.workflows), "workflow"),
            (len(self.playbooks), "playbook"),
            (len(m.notifications.webhooks), "webhook"),
        )
        return f"{self.path}: OK: " + ", ".join(
            f"{n} {noun}{'' if n == 1 else 's'}" for n, noun in counts
        )

"""The config schema as typed models, and the resolved view the daemon runs on.

Everything in ``control-plane/config.yaml`` and ``recovery_playbooks/*.yaml``
is parsed here once. Loading and error reporting (file:line for every
problem) live in ``medic.config.load``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import Field, field_validator, model_validator

from medic.config.actions import ACTION_OPTIONS, ActionOptions, StepRetry
from medic.config.api import ApiConfig as ApiConfig
from medic.config.api import ApiToken as ApiToken
from medic.config.api import Scope as Scope
from medic.config.checks import CHECK_OPTIONS, CheckOptions
from medic.config.fleet import FleetConfig
from medic.config.notifications import AppriseConfig
from medic.config.policy import HOST_WIDE_POLICY_KEYS as HOST_WIDE_POLICY_KEYS
from medic.config.policy import BackoffConfig as BackoffConfig
from medic.config.policy import BackoffOverride as BackoffOverride
from medic.config.policy import RecoveryPolicy as RecoveryPolicy
from medic.config.policy import ServicePolicy as ServicePolicy
from medic.config.section import Section as Section
from medic.config.types import Argv, Duration, RelPath
from medic.core.errors import ConfigIssue
from medic.core.vocabulary import FailureType

if TYPE_CHECKING:
    CheckSpec = CheckOptions
    StepSpec = ActionOptions
else:
    CheckSpec = Annotated[Union[CHECK_OPTIONS], Field(discriminator="type")]  # noqa: UP007
    StepSpec = Annotated[Union[ACTION_OPTIONS], Field(discriminator="action")]  # noqa: UP007


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
    recovery_policy: ServicePolicy | None = None
    stop_timeout: Duration | None = None
    """How long a container or program gets to stop before it is killed; the
    default of ``restart_container`` steps that give none."""
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
    resumable: bool = False
    """A run cut off by a crash continues at its first unfinished step on the next
    start (as if every step said ``resumable: true``)."""
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
    apprise: list[AppriseConfig] = Field(default_factory=list)
    queue_size: int = Field(default=1000, ge=10)
    """Events waiting per webhook (messages per Apprise target); when full, the oldest
    is dropped (and counted)."""

    @field_validator("webhooks", "apprise")
    @classmethod
    def _unique_names(
        cls, targets: list[WebhookConfig] | list[AppriseConfig]
    ) -> list[WebhookConfig] | list[AppriseConfig]:
        names = [target.name for target in targets]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"names must be unique; repeated: {', '.join(twice)}")
        return targets


class DockerConfig(Section):
    """``docker:``: services found from the labels of the engine's containers."""

    discover: Literal["off", "labeled", "all"] = "off"
    """``labeled``: containers labelled ``medic.enable=true``; ``all``: every
    container unless labelled ``medic.enable=false``."""
    autoheal_labels: bool = False
    """Honour autoheal's ``autoheal=true`` and ``autoheal.stop.timeout`` labels."""


class MaintenanceWindow(Section):
    """A scheduled window: from each ``cron`` time, for ``duration``, the
    services are watched but never healed (``maintenance:``)."""

    services: list[str] | Literal["*"] = "*"
    cron: str
    duration: Duration = Field(gt=0)
    reason: str = "maintenance window"
    timezone: str | None = None


class Config(Section):
    daemon: DaemonConfig = DaemonConfig()
    api: ApiConfig = ApiConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    playbooks_dir: RelPath = Field(default=Path("../recovery_playbooks"), validate_default=True)
    """Relative to the config file, the default too (not to the working directory)."""
    services: dict[str, ServiceConfig] = Field(default_factory=dict)
    workflows: dict[str, WorkflowConfig] = Field(default_factory=dict)
    notifications: NotificationsConfig = NotificationsConfig()
    docker: DockerConfig = DockerConfig()
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)
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
    stop_timeout_s: float | None = None
    source: Literal["yaml", "docker"] = "yaml"
    """Where the service was declared: the config file or a container's labels."""
    shared: bool = False

    @classmethod
    def resolve(
        cls,
        name: str,
        svc: ServiceConfig,
        mon: MonitoringConfig,
        source: Literal["yaml", "docker"] = "yaml",
    ) -> ServiceSpec:
        policy = (
            mon.recovery if svc.recovery_policy is None else svc.recovery_policy.over(mon.recovery)
        )
        return cls(
            name=name,
            check=svc.check,
            interval_s=_first(svc.interval, mon.health_check_interval),
            timeout_s=_first(svc.check.timeout, svc.timeout, mon.timeout),
            failure_threshold=_first(svc.failure_threshold, mon.failure_threshold),
            success_threshold=_first(svc.success_threshold, mon.success_threshold),
            start_period_s=_start_period(svc, mon),
            policy=policy,
            container=svc.container,
            unit=svc.unit,
            process=svc.process,
            start_command=tuple(svc.start_command) if svc.start_command else None,
            depends_on=tuple(svc.depends_on),
            recovery=dict(svc.recovery),
            description=svc.description,
            stop_timeout_s=svc.stop_timeout,
            source=source,
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

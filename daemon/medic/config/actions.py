"""The action plugins' option models: what a playbook or workflow step may say.

One model per YAML ``action``, each named for its plugin
(``RestartContainerOptions`` for ``action: restart_container``);
``ACTION_OPTIONS`` lists them for the discriminated union in
``medic.config.models``. The action plugins (``medic.heal.actions``) import
their model from here, so config never imports a plugin. The validation
helpers the options need live beside them (signal names, ``run_command``'s
argv or shell string).
"""

from __future__ import annotations

import signal
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from medic.config.checks import HttpMethod, HttpUrl, StatusList, StatusSpec, dsn_sources_given
from medic.config.section import Section
from medic.config.types import Argv, Duration, RelPath

SHELL = "/bin/sh"

ServiceTargetKey = Literal["container", "unit", "process"]
"""What of a service a step may act on by default (``ServiceSpec`` attributes)."""


class StepRetry(Section):
    """Per-step retry (workflow steps); the seed's retry_policy keys."""

    max_retries: int = Field(default=0, ge=0, le=100)
    backoff: Literal["exponential", "linear", "fixed"] = "exponential"
    initial_delay: Duration = 1.0
    max_delay: Duration = 300.0
    jitter: bool = True


class ActionOptions(Section):
    """Keys every step accepts; each plugin's model adds an ``action`` literal."""

    action: str
    name: str | None = None
    """Step name; required in workflows (``depends_on`` refers to it)."""
    timeout: Duration | None = None
    depends_on: list[str] = Field(default_factory=list)
    retry: StepRetry | None = None
    continue_on_failure: bool = False
    resumable: bool = False
    """Workflow steps: safe to start over, so a run cut off by a crash while this
    step may have been running continues here on the next start."""

    service_target: ClassVar[ServiceTargetKey | None] = None
    """What the step acts on unless it names a target of its own: the service's
    ``container``, ``unit`` or ``process``; None when it needs none of them.
    A playbook applies to a service only if the service names what every
    step needs (``medic.heal.playbooks``)."""
    own_target_keys: ClassVar[tuple[str, ...]] = ()
    """Step keys that name a target of the step's own, so the service needs none."""

    def needed_service_target(self) -> ServiceTargetKey | None:
        """What the service must name for this step to act; None when nothing."""
        if any(getattr(self, key, None) for key in self.own_target_keys):
            return None
        return self.service_target

    def published_events(self) -> tuple[str, ...]:
        """Events the step itself publishes, which webhooks may subscribe to."""
        return ()

    def workflow_timeout_problem(self, timeout: float) -> tuple[str, str] | None:
        """The key at fault and the problem, in words, when the step can never
        finish within its workflow's ``timeout``; None when it can."""
        return None


# the actions -------------------------------------------------------------------------


def _default_request_status() -> list[StatusSpec]:
    return ["2xx"]


class HttpRequestOptions(ActionOptions):
    # populate_by_name: the field is json_body in Python (``json`` is a
    # BaseModel method) and ``json`` in YAML.
    model_config = ConfigDict(populate_by_name=True)

    action: Literal["http_request"]
    url: HttpUrl
    method: HttpMethod = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: Any = Field(default=None, alias="json")
    body: str | None = None
    expect_status: StatusList = Field(default_factory=_default_request_status)
    verify_tls: bool = True
    follow_redirects: bool = True

    @model_validator(mode="after")
    def _one_body(self) -> HttpRequestOptions:
        if self.json_body is not None and self.body is not None:
            raise ValueError("give either json or body, not both")
        return self


class NotifyOptions(ActionOptions):
    action: Literal["notify"]
    event: str = Field(default="notify", min_length=1)
    """The event name webhooks subscribe to, e.g. ``recovery.failed``."""
    message: str | None = None

    def published_events(self) -> tuple[str, ...]:
        return (self.event,)


class ReconnectOptions(ActionOptions):
    action: Literal["reconnect"]
    dsn: str | None = None
    dsn_env: str | None = None
    dsn_file: RelPath | None = None
    initial_delay: Duration = Field(default=0.2, gt=0)
    max_delay: Duration = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _at_most_one_dsn(self) -> ReconnectOptions:
        given = dsn_sources_given(self)
        if len(given) > 1:
            raise ValueError(f"give at most one of dsn, dsn_env, dsn_file (got {', '.join(given)})")
        return self


class RestartContainerOptions(ActionOptions):
    action: Literal["restart_container"]
    service_target = "container"
    own_target_keys = ("container",)

    container: str | None = None
    """Name or id; defaults to the service's ``container:``."""
    stop_timeout: Duration | None = None
    """Seconds Docker waits after SIGTERM before it kills a running container.
    The container's own ``StopTimeout`` wins; without either, the service's
    stop timeout, else 10 s."""


class RecreateContainerOptions(ActionOptions):
    action: Literal["recreate_container"]
    service_target = "container"
    own_target_keys = ("container",)

    container: str | None = None
    """Name or id; defaults to the service's ``container:``."""
    stop_timeout: Duration = 10.0
    """Seconds Docker waits after SIGTERM before it kills the old container."""
    network_mode: str | None = None
    """Replaces the container's ``network_mode`` (e.g. ``container:<new parent id>``)."""


class RestartProcessOptions(ActionOptions):
    action: Literal["restart_process"]
    service_target = "process"

    stop_timeout: Duration | None = None
    """Overrides the service's ``process.stop_timeout``."""


class RestartUnitOptions(ActionOptions):
    action: Literal["restart_unit"]
    service_target = "unit"
    own_target_keys = ("unit",)

    unit: str | None = None
    """Defaults to the service's ``unit:``."""
    reset_failed: bool = True
    """Run ``systemctl reset-failed UNIT`` first when the unit is in ``failed`` state."""


class RunCommandOptions(ActionOptions):
    action: Literal["run_command"]
    command: Argv | str
    shell: bool = False
    cwd: RelPath | None = None
    env: dict[str, str] = Field(default_factory=dict)
    """Added to the daemon's environment."""
    ok_exit_codes: list[int] = Field(default_factory=lambda: [0], min_length=1)
    kill_grace: Duration = 5.0
    """After SIGTERM on cancellation, how long before SIGKILL."""

    @model_validator(mode="before")
    @classmethod
    def _in_the_files_folder(cls, data: Any, info: ValidationInfo) -> Any:
        base = (info.context or {}).get("base_dir")
        if isinstance(data, dict) and data.get("cwd") is None and base is not None:
            return {**data, "cwd": str(base)}
        return data

    @model_validator(mode="after")
    def _argv_unless_shell(self) -> RunCommandOptions:
        if isinstance(self.command, str) and not self.shell:
            raise ValueError(
                "command must be an argv list; set shell: true to run a string through /bin/sh"
            )
        if isinstance(self.command, list) and self.shell:
            raise ValueError("with shell: true, command must be one string for /bin/sh -c")
        if not self.command:
            raise ValueError("command must not be empty")
        return self

    def argv(self) -> list[str]:
        if isinstance(self.command, str):
            return [SHELL, "-c", self.command]
        return list(self.command)


def parse_signal(value: Any) -> signal.Signals:
    """``HUP``, ``SIGHUP``, ``hup`` or ``1`` -> ``signal.SIGHUP``."""
    if isinstance(value, signal.Signals):
        return value
    text = str(value).strip().upper()
    try:
        if text.isdigit():
            return signal.Signals(int(text))
        return signal.Signals[text if text.startswith("SIG") else f"SIG{text}"]
    except (KeyError, ValueError):
        known = ", ".join(s.name.removeprefix("SIG") for s in signal.Signals)
        raise ValueError(f"unknown signal {value!r}; known: {known}") from None


class SignalProcessOptions(ActionOptions):
    action: Literal["signal_process"]
    service_target = "process"
    own_target_keys = ("pid", "pidfile")

    signal: str
    """e.g. ``HUP`` (reload your configuration), ``TERM``, ``USR1``, ``SIGUSR2``, ``9``."""
    pid: int | None = Field(default=None, gt=0)
    pidfile: RelPath | None = None

    @field_validator("signal")
    @classmethod
    def _known(cls, value: str) -> str:
        return parse_signal(value).name

    @model_validator(mode="after")
    def _one_target(self) -> SignalProcessOptions:
        if self.pid is not None and self.pidfile is not None:
            raise ValueError("signal_process takes 'pid' or 'pidfile', not both")
        return self


class SleepOptions(ActionOptions):
    action: Literal["sleep"]
    duration: Duration

    @model_validator(mode="after")
    def _fits_its_timeout(self) -> SleepOptions:
        if self.timeout is not None and self.duration > self.timeout:
            raise ValueError(
                f"the sleep ({self.duration:g}s) is longer than the step's timeout"
                f" ({self.timeout:g}s), so the step would always time out;"
                " raise the timeout or leave it out (a sleep is not cut short by default)"
            )
        return self

    def workflow_timeout_problem(self, timeout: float) -> tuple[str, str] | None:
        if self.timeout or self.duration <= timeout:
            return None  # a step timeout of its own already bounds the sleep
        return "duration", (
            f"the sleep ({self.duration:g}s) is longer than the workflow's timeout ({timeout:g}s),"
            " so every run would time out"
        )


class StartContainerOptions(ActionOptions):
    action: Literal["start_container"]
    service_target = "container"
    own_target_keys = ("container",)

    container: str | None = None
    """Name or id; defaults to the service's ``container:``."""


class StartServiceOptions(ActionOptions):
    action: Literal["start_service"]
    command: list[str] | None = Field(default=None, min_length=1)
    """Argv that starts the service; overrides what the service names."""
    kill_grace: Duration = 5.0
    """After SIGTERM on cancellation, how long before SIGKILL (``command``)."""


class WaitHealthyOptions(ActionOptions):
    action: Literal["wait_healthy"]
    consecutive: int = Field(default=1, ge=1, le=100)
    """Healthy probes in a row that count as recovered."""
    interval: Duration = Field(default=1.0, gt=0)
    """The longest pause between probes."""


ACTION_OPTIONS: tuple[type[ActionOptions], ...] = (
    HttpRequestOptions,
    NotifyOptions,
    ReconnectOptions,
    RecreateContainerOptions,
    RestartContainerOptions,
    RestartProcessOptions,
    RestartUnitOptions,
    RunCommandOptions,
    SignalProcessOptions,
    SleepOptions,
    StartContainerOptions,
    StartServiceOptions,
    WaitHealthyOptions,
)
"""Every action's options model, in the order of the step union."""

"""The check plugins' option models: what a service's ``check:`` may say.

One model per YAML ``type``, each named for its plugin (``HttpCheckOptions``
for ``type: http``); ``CHECK_OPTIONS`` lists them for the discriminated union
in ``medic.config.models``. The check plugins (``medic.watch.checks``) import
their model from here, so config never imports a plugin. The validation
helpers the options need live beside them: HTTP statuses, URLs and methods
(shared with the ``http_request`` action), the sources of a DSN (shared with
``reconnect``) and ``leak_min_growth``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ByteSize,
    Field,
    TypeAdapter,
    model_validator,
)
from yarl import URL

from medic.config.section import Section
from medic.config.types import Argv, Duration, Regex, RelPath


class CheckOptions(Section):
    """Keys every check accepts; each plugin's model adds a ``type`` literal."""

    type: str
    timeout: Duration | None = Field(default=None, gt=0)
    """Overrides the service's and ``monitoring.timeout``."""

    def target_problem(
        self, *, container: str | None, unit: str | None, process: bool
    ) -> str | None:
        """What the check lacks on a service naming this ``container:``, ``unit:``
        and ``process:`` (given or not), in words; None when it lacks nothing.

        A check that watches the service's own container, unit or process by
        default says here that it needs one (``medic validate`` reports it).
        """
        return None


# http --------------------------------------------------------------------------------

_STATUS_CLASS = re.compile(r"^([1-5])xx$")
_STATUS_RANGE = re.compile(r"^(\d{3})-(\d{3})$")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

StatusSpec = int | str


def status_matches(status: int, spec: StatusSpec) -> bool:
    """Whether ``status`` fits one entry of ``expect_status`` (200, "2xx", "200-204")."""
    if isinstance(spec, int):
        return status == spec
    if match := _STATUS_CLASS.match(spec):
        return status // 100 == int(match.group(1))
    if match := _STATUS_RANGE.match(spec):
        return int(match.group(1)) <= status <= int(match.group(2))
    return False


def validate_status_spec(spec: StatusSpec) -> StatusSpec:
    """``spec`` normalised (``2XX`` -> ``2xx``), or ValueError naming the three forms."""
    if isinstance(spec, int):
        if not 100 <= spec <= 599:
            raise ValueError(f"HTTP status {spec} is not between 100 and 599")
        return spec
    spec = spec.strip().lower()
    if spec.isdigit():  # "200" from a label or a quoted YAML value
        return validate_status_spec(int(spec))
    if _STATUS_CLASS.match(spec):
        return spec
    if (match := _STATUS_RANGE.match(spec)) and int(match.group(1)) <= int(match.group(2)):
        return spec
    raise ValueError(
        f"invalid status {spec!r}: use a code (200), a class ('2xx') or a range ('200-204')"
    )


def _default_expect_status() -> list[StatusSpec]:
    return ["2xx", "3xx"]


def _absolute_http_url(value: str) -> str:
    url = URL(value)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"{value!r} is not an absolute http:// or https:// URL")
    return value


def _known_method(value: str) -> str:
    method = value.upper()
    if method not in _METHODS:
        raise ValueError(f"unknown HTTP method {value!r}; known: {', '.join(sorted(_METHODS))}")
    return method


def _valid_statuses(value: list[StatusSpec]) -> list[StatusSpec]:
    return [validate_status_spec(spec) for spec in value]


HttpUrl = Annotated[str, AfterValidator(_absolute_http_url)]
"""An absolute http:// or https:// URL (shared by the check and http_request)."""
HttpMethod = Annotated[str, AfterValidator(_known_method)]
StatusList = Annotated[list[StatusSpec], Field(min_length=1), AfterValidator(_valid_statuses)]


# postgres ----------------------------------------------------------------------------

DSN_KEYS = ("dsn", "dsn_env", "dsn_file")


class DsnSource(Protocol):
    """Options that name a database: the ``postgres`` check's, the ``reconnect`` step's."""

    @property
    def dsn(self) -> str | None: ...

    @property
    def dsn_env(self) -> str | None: ...

    @property
    def dsn_file(self) -> Path | None: ...


def dsn_sources_given(options: DsnSource) -> list[str]:
    """Which of ``dsn``, ``dsn_env``, ``dsn_file`` are set."""
    return [key for key in DSN_KEYS if getattr(options, key) is not None]


# process: leak_min_growth ------------------------------------------------------------

_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
_BYTES = TypeAdapter(ByteSize)


@dataclass(frozen=True)
class MinGrowth:
    """``leak_min_growth``: bytes per window, or percent of the window's first sample."""

    bytes: int | None = None
    percent: float | None = None

    def threshold(self, first_sample: float) -> float:
        if self.percent is not None:
            return first_sample * self.percent / 100.0
        assert self.bytes is not None
        return float(self.bytes)

    def __str__(self) -> str:
        return f"{self.percent:g}%" if self.percent is not None else f"{self.bytes} bytes"


def parse_min_growth(value: Any) -> MinGrowth:
    """``"10%"``, ``"50MB"``, ``"64MiB"`` or a number of bytes."""
    if isinstance(value, MinGrowth):
        return value
    if isinstance(value, str) and (match := _PERCENT.match(value)):
        percent = float(match.group(1))
        if not 0 < percent <= 1000:
            raise ValueError(f"leak_min_growth percent must be in (0, 1000] (got {value!r})")
        return MinGrowth(percent=percent)
    size = int(_BYTES.validate_python(value))
    if size <= 0:
        raise ValueError(f"leak_min_growth must be positive (got {value!r})")
    return MinGrowth(bytes=size)


# the check types ---------------------------------------------------------------------


class CommandCheckOptions(CheckOptions):
    type: Literal["command"]
    command: Argv = Field(min_length=1)
    """An argv list; no shell (``[sh, -c, "..."]`` if one is really needed)."""
    cwd: RelPath | None = None
    env: dict[str, str] = Field(default_factory=dict)
    """Added to the daemon's environment."""
    ok_exit_codes: list[int] = Field(default_factory=lambda: [0], min_length=1)
    kill_grace: Duration = 1.0
    """After the timeout's SIGTERM, how long before SIGKILL: checks run often."""


class ContainerCheckOptions(CheckOptions):
    type: Literal["container"]
    container: str | None = None
    """Name or id; defaults to the service's ``container:``."""
    require_healthy: bool = False
    """Treat HEALTHCHECK ``starting`` as a failure instead of healthy-for-now."""

    def target_problem(
        self, *, container: str | None, unit: str | None, process: bool
    ) -> str | None:
        if self.container or container:
            return None
        return "a container check needs 'container:' on the check or the service"


class HttpCheckOptions(CheckOptions):
    type: Literal["http"]
    url: HttpUrl
    method: HttpMethod = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    expect_status: StatusList = Field(default_factory=_default_expect_status)
    body_contains: str | None = None
    body_regex: Regex | None = None
    verify_tls: bool = True
    follow_redirects: bool = True


class PostgresCheckOptions(CheckOptions):
    type: Literal["postgres"]
    dsn: str | None = None
    """``postgresql://user@host:port/db``; keep passwords out: use ``dsn_env`` or ``dsn_file``."""
    dsn_env: str | None = None
    dsn_file: RelPath | None = None
    query: str = Field(default="SELECT 1", min_length=1)

    @model_validator(mode="after")
    def _exactly_one_dsn(self) -> PostgresCheckOptions:
        given = dsn_sources_given(self)
        if len(given) != 1:
            also = f" (got {', '.join(given)})" if given else ""
            raise ValueError(f"a postgres check needs exactly one of dsn, dsn_env, dsn_file{also}")
        return self


class ProcessCheckOptions(CheckOptions):
    type: Literal["process"]
    name: str | None = None
    """The process name (``comm``, e.g. ``nginx``)."""
    cmdline: Regex | None = None
    """A regular expression searched in the process's space-joined command line."""
    pidfile: RelPath | None = None
    memory_max: ByteSize | None = None
    """Resident memory limit, e.g. ``512MB``, ``1GiB``."""
    leak_detection: bool = True
    leak_window: Duration = Field(default=300.0, gt=0)
    leak_min_samples: int = Field(default=5, ge=3, le=100_000)
    leak_min_growth: Annotated[MinGrowth, BeforeValidator(parse_min_growth)] = MinGrowth(
        percent=10.0
    )
    """The least rise per ``leak_window`` that counts: ``10%`` (of the window's
    first sample) or a size such as ``50MB``."""
    cpu_percent_max: float | None = Field(default=None, gt=0)
    """Percent of one CPU (a process busy on two cores uses 200)."""

    @model_validator(mode="after")
    def _one_selector(self) -> ProcessCheckOptions:
        given = [k for k in ("name", "cmdline", "pidfile") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"a process check takes one of name, cmdline, pidfile (got {given})")
        return self

    def target_problem(
        self, *, container: str | None, unit: str | None, process: bool
    ) -> str | None:
        # A process check that names no process watches the service's ``process:``.
        if process or any((self.name, self.cmdline, self.pidfile)):
            return None
        return "a process check needs 'name', 'cmdline' or 'pidfile', or 'process:' on the service"


Percent = float


class SystemCheckOptions(CheckOptions):
    type: Literal["system"]
    disk_percent_max: Percent | None = Field(default=90.0, gt=0, le=100)
    disk_paths: list[str] = Field(default_factory=lambda: ["/"], min_length=1)
    """Mount points (or any path on them) whose usage is checked."""
    memory_percent_max: Percent | None = Field(default=95.0, gt=0, le=100)
    load_per_cpu_max: float | None = Field(default=None, gt=0)
    """The 5-minute load average divided by the CPU count."""
    cpu_percent_max: Percent | None = Field(default=None, gt=0, le=100)
    """CPU busy share since the previous check."""


class TcpCheckOptions(CheckOptions):
    type: Literal["tcp"]
    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(ge=1, le=65535)
    send: str | None = None
    """Written as UTF-8 once connected (e.g. ``"PING\\r\\n"``)."""
    expect: str | None = None
    """Must appear in the reply (read up to 4 KiB or until the peer closes)."""


class UnitCheckOptions(CheckOptions):
    type: Literal["unit"]
    unit: str | None = None
    """Defaults to the service's ``unit:``."""

    def target_problem(
        self, *, container: str | None, unit: str | None, process: bool
    ) -> str | None:
        if self.unit or unit:
            return None
        return "a unit check needs 'unit:' on the check or the service"


CHECK_OPTIONS: tuple[type[CheckOptions], ...] = (
    CommandCheckOptions,
    ContainerCheckOptions,
    HttpCheckOptions,
    PostgresCheckOptions,
    ProcessCheckOptions,
    SystemCheckOptions,
    TcpCheckOptions,
    UnitCheckOptions,
)
"""Every check's options model, in the order of the ``check:`` union."""

"""Process-wide log configuration: what every line medic writes looks like.

This module owns the structlog configuration and the root handler of the
stdlib ``logging`` tree. Events from medic's own loggers and records from
libraries (aiohttp, apscheduler, docker, asyncio, ...) travel through the same
handler and the same renderer, so one stream carries one format: either
console lines that read like

    2026-01-06 07:27:00 - ControlPlaneOrchestrator - INFO - Workflow registered: x service=web

or JSON objects, one per line, with ``timestamp``, ``level``, ``logger``,
``event`` and every context key as a field of its own. medic's own events are
stable dotted names (``circuit.opened``, ``recovery.step``) with the prose in
a ``message`` field, which the console prints instead of the name.

Naming rule: an event's name is ``<subject>.<what_happened>``, lower case
with underscores inside a part (``process.exited``, ``reload.refused``,
``step_command.ended``): the subject is the thing the line is about, not the
component that logs it, and what happened is a past participle or a short
state. A name is a contract for log queries and tests, so it never carries
values; those go into fields, and the wording for people into ``message=``,
which may change freely (an f-string is fine there).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from medic.core.redact import SecretValues, redact_urls

# structlog's dev and tracebacks modules import rich whenever it is installed
# (it comes with some tools, e.g. a test dependency), for pretty tracebacks that
# medic never renders: 3.5 MiB of RSS and 30-40 ms of start-up. rich is hidden
# while structlog loads and visible again right after, for anyone else.
_HIDE_RICH = "rich" not in sys.modules and "structlog" not in sys.modules
if _HIDE_RICH:
    sys.modules["rich"] = None  # type: ignore[assignment]
try:
    import structlog
    from structlog.typing import EventDict, WrappedLogger
finally:
    if _HIDE_RICH:
        del sys.modules["rich"]

LogFormat = Literal["auto", "console", "json"]

# Every medic component logs through this one stdlib logger; the component is
# a field of the event, not part of the logger name.
MEDIC_LOGGER_NAME = "medic"

# Libraries are noisy below WARNING (apscheduler announces every job run).
_LIBRARY_LEVEL = logging.WARNING

_CONSOLE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

MESSAGE_KEY = "message"
"""The field that carries an event's prose: ``log.warning("circuit.opened",
message="Circuit opened: no more automatic recovery", service="web")``. The
event itself is a stable dotted name that tests and log queries match on;
the console shows the prose in its place."""


def configure_logging(
    fmt: LogFormat = "auto",
    level: str = "INFO",
    stream: TextIO | None = None,
    secrets: SecretValues | None = None,
) -> None:
    """Send all logging of this process to *stream* (default stderr) in one format.

    ``auto`` picks console lines on a TTY and JSON otherwise (journald, files,
    pipes). medic's own events are filtered at *level*; library records at
    WARNING, or at *level* when that is stricter. Calling it again replaces the
    previous configuration. Every line has URL passwords masked, and the
    values in ``secrets`` (filled as the daemon loads its config).
    """
    target = sys.stderr if stream is None else stream
    medic_level = _parse_level(level)
    handler = logging.StreamHandler(target)
    handler.setFormatter(_formatter(_use_json(fmt, target), secrets))
    _replace_root_handlers(handler, max(medic_level, _LIBRARY_LEVEL))
    logging.getLogger(MEDIC_LOGGER_NAME).setLevel(medic_level)
    # warnings.warn() output would otherwise bypass the handler and break
    # the one-format-per-stream promise.
    logging.captureWarnings(True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
        logger_factory=structlog.stdlib.LoggerFactory(),
        context_class=dict,
        # Loggers are usually created at import time, before configure_logging
        # runs; without caching every call follows the current configuration.
        cache_logger_on_first_use=False,
    )


def get_logger(component: str, **context: Any) -> structlog.stdlib.BoundLogger:
    """Return a logger whose lines carry *component* and the given *context*.

    ``get_logger("RecoveryEngine", service="web")`` logs lines that name the
    component and carry ``service=web``; ``.bind()`` adds more context later.
    The logger stays lazy, so it may be created before configure_logging.
    """
    return structlog.stdlib.get_logger(MEDIC_LOGGER_NAME, component=component, **context)


def _parse_level(level: str) -> int:
    levels = logging.getLevelNamesMapping()
    try:
        return levels[level.upper()]
    except KeyError:
        raise ValueError(f"unknown log level {level!r}") from None


def _use_json(fmt: str, stream: TextIO) -> bool:
    if fmt == "json":
        return True
    if fmt == "console":
        return False
    if fmt == "auto":
        return not _is_tty(stream)
    raise ValueError(f"unknown log format {fmt!r} (expected auto, console or json)")


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or already closed
        return False


def _formatter(
    json_lines: bool, secrets: SecretValues | None
) -> structlog.stdlib.ProcessorFormatter:
    render = _render_json if json_lines else _render_console
    redact = redact_urls if secrets is None else secrets.redact

    def renderer(logger: WrappedLogger, name: str, event_dict: EventDict) -> str:
        # Whatever a line names (a library's error quoting a URL, a step's
        # target), a password in a URL never reaches the log.
        return redact(render(logger, name, event_dict))

    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.contextvars.merge_contextvars],
        processors=[
            _take_record_fields,
            structlog.stdlib.add_log_level,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )


def _replace_root_handlers(handler: logging.Handler, root_level: int) -> None:
    # medic owns its process's logging: a handler left by an earlier call, or
    # by a library's implicit basicConfig(), would write a second format.
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(root_level)


def _take_record_fields(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Move time and logger name from the LogRecord into the event, drop the record."""
    record: logging.LogRecord = event_dict.pop("_record")
    event_dict.pop("_from_structlog", None)
    event_dict["timestamp"] = record.created
    # Library records have no component: their logger name stands in for it.
    event_dict.setdefault("component", record.name)
    return event_dict


def _render_console(_: WrappedLogger, __: str, event_dict: EventDict) -> str:
    when = datetime.fromtimestamp(event_dict.pop("timestamp")).strftime(_CONSOLE_TIME_FORMAT)
    component = event_dict.pop("component")
    level = str(event_dict.pop("level")).upper()
    event = event_dict.pop("event", "")
    # medic's events have a stable name (``circuit.opened``) and the prose in
    # ``message``: a person reads the prose, a program matches the name (JSON).
    text = event_dict.pop(MESSAGE_KEY, None) or event
    exception = event_dict.pop("exception", None)
    pairs = "".join(f" {key}={_console_value(value)}" for key, value in event_dict.items())
    line = f"{when} - {component} - {level} - {text}{pairs}"
    if exception:
        line = f"{line}\n{str(exception).rstrip()}"
    return line


def _console_value(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    if text and not any(ch.isspace() or ch in '"=' for ch in text):
        return text
    # Quote so a value with spaces cannot be misread as further key=value pairs.
    return json.dumps(text)


def _render_json(_: WrappedLogger, __: str, event_dict: EventDict) -> str:
    line = {
        "timestamp": _iso_utc(event_dict.pop("timestamp")),
        "level": event_dict.pop("level"),
        "logger": event_dict.pop("component"),
        "event": event_dict.pop("event", ""),
    }
    for key, value in event_dict.items():
        line.setdefault(key, value)
    return json.dumps(line, default=str)


def _iso_utc(created: float) -> str:
    moment = datetime.fromtimestamp(created, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

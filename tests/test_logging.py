"""Log format contract: console lines as in design.md, JSON lines for journald."""

from __future__ import annotations

import io
import json
import logging
import re
import warnings
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import structlog

from medic.core.logging import configure_logging, get_logger

CONSOLE_LINE = re.compile(
    r"^(?P<time>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) - (?P<component>\S+) - "
    r"(?P<level>[A-Z]+) - (?P<event>.*)$"
)
ISO_UTC_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


class TtyStream(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _isolated_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    medic_level = logging.getLogger("medic").level
    yield
    structlog.reset_defaults()
    logging.captureWarnings(False)
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("medic").setLevel(medic_level)


def json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_console_line_reads_like_design_md() -> None:
    stream = io.StringIO()
    configure_logging("console", stream=stream)

    get_logger("ControlPlaneOrchestrator").info("Workflow registered: custom-workflow")

    line = stream.getvalue().rstrip("\n")
    match = CONSOLE_LINE.match(line)
    assert match, line
    assert match["component"] == "ControlPlaneOrchestrator"
    assert match["level"] == "INFO"
    assert match["event"] == "Workflow registered: custom-workflow"
    # Local time, to the second.
    logged = datetime.strptime(match["time"], "%Y-%m-%d %H:%M:%S")
    assert abs(datetime.now() - logged) < timedelta(seconds=5)


def test_console_line_appends_context_as_key_value_pairs() -> None:
    stream = io.StringIO()
    configure_logging("console", stream=stream)

    log = get_logger("RecoveryEngine", service="web")
    log.warning("Recovery started", failure_type="service_crash")

    line = stream.getvalue().rstrip("\n")
    assert re.match(
        r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} - RecoveryEngine - WARNING - "
        r"Recovery started service=web failure_type=service_crash$",
        line,
    ), line
    assert "\x1b[" not in line


def test_console_quotes_values_with_spaces() -> None:
    stream = io.StringIO()
    configure_logging("console", stream=stream)

    get_logger("SelfHealingMonitor").info("Check failed", detail="connection refused")

    assert stream.getvalue().rstrip("\n").endswith('Check failed detail="connection refused"')


def test_console_appends_traceback() -> None:
    stream = io.StringIO()
    configure_logging("console", stream=stream)

    try:
        raise RuntimeError("boom")
    except RuntimeError:
        get_logger("RecoveryEngine").exception("Playbook crashed", playbook="restart-container")

    first, *rest = stream.getvalue().rstrip("\n").splitlines()
    assert first.endswith("- RecoveryEngine - ERROR - Playbook crashed playbook=restart-container")
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-1] == "RuntimeError: boom"


def test_json_lines_carry_context_fields() -> None:
    stream = io.StringIO()
    configure_logging("json", stream=stream)

    log = get_logger("RecoveryEngine", service="web", playbook="restart-container")
    log.info("Recovery succeeded", duration_seconds=0.8)

    [line] = json_lines(stream)
    assert list(line)[:4] == ["timestamp", "level", "logger", "event"]
    assert line["level"] == "info"
    assert line["logger"] == "RecoveryEngine"
    assert line["event"] == "Recovery succeeded"
    assert line["service"] == "web"
    assert line["playbook"] == "restart-container"
    assert line["duration_seconds"] == 0.8
    assert isinstance(line["timestamp"], str)
    assert ISO_UTC_MS.match(line["timestamp"]), line["timestamp"]


def test_named_event_prints_its_prose_on_the_console_and_both_in_json() -> None:
    console, json_stream = io.StringIO(), io.StringIO()
    configure_logging("console", stream=console)
    get_logger("RecoveryEngine").warning(
        "circuit.opened", message="Circuit opened: no more automatic recovery", service="web"
    )
    configure_logging("json", stream=json_stream)
    get_logger("RecoveryEngine").warning(
        "circuit.opened", message="Circuit opened: no more automatic recovery", service="web"
    )

    match = CONSOLE_LINE.match(console.getvalue().rstrip("\n"))
    assert match, console.getvalue()
    assert match["event"] == "Circuit opened: no more automatic recovery service=web"
    assert "circuit.opened" not in console.getvalue()
    [line] = json_lines(json_stream)
    assert list(line)[:4] == ["timestamp", "level", "logger", "event"]
    assert line["event"] == "circuit.opened"
    assert line["message"] == "Circuit opened: no more automatic recovery"
    assert line["service"] == "web"


def test_json_bind_adds_context() -> None:
    stream = io.StringIO()
    configure_logging("json", stream=stream)

    log = get_logger("ControlPlaneOrchestrator").bind(workflow="revenue-automation")
    log.info("Workflow started")

    [line] = json_lines(stream)
    assert line["workflow"] == "revenue-automation"


def test_json_survives_unserialisable_values() -> None:
    stream = io.StringIO()
    configure_logging("json", stream=stream)

    get_logger("SelfHealingMonitor").info("Odd value", value={1, 2}, obj=object())

    [line] = json_lines(stream)
    assert line["value"] == "{1, 2}"
    assert str(line["obj"]).startswith("<object object")


def test_json_exception_is_a_field() -> None:
    stream = io.StringIO()
    configure_logging("json", stream=stream)

    try:
        raise ValueError("bad")
    except ValueError:
        get_logger("RecoveryEngine").exception("Step failed")

    [line] = json_lines(stream)
    assert line["level"] == "error"
    assert "ValueError: bad" in str(line["exception"])


def test_stdlib_records_are_json_in_json_mode() -> None:
    stream = io.StringIO()
    configure_logging("json", stream=stream)

    logging.getLogger("aiohttp.server").error("Error handling request %s", "/x")
    logging.getLogger("apscheduler.executors.default").info("Job executed")  # below WARNING
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("deprecated thing", DeprecationWarning, stacklevel=1)

    lines = json_lines(stream)
    assert [line["logger"] for line in lines] == ["aiohttp.server", "py.warnings"]
    assert lines[0]["event"] == "Error handling request /x"
    assert lines[0]["level"] == "error"
    assert "deprecated thing" in str(lines[1]["event"])


def test_stdlib_records_use_console_format_in_console_mode() -> None:
    stream = io.StringIO()
    configure_logging("console", stream=stream)

    logging.getLogger("docker.api").warning("slow engine")

    assert re.match(
        r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} - docker\.api - WARNING - slow engine$",
        stream.getvalue().rstrip("\n"),
    )


def test_level_filters_medic_events() -> None:
    stream = io.StringIO()
    configure_logging("json", level="WARNING", stream=stream)

    log = get_logger("SelfHealingMonitor")
    log.info("hidden")
    log.warning("shown")

    assert [line["event"] for line in json_lines(stream)] == ["shown"]


def test_debug_level_does_not_open_library_chatter() -> None:
    stream = io.StringIO()
    configure_logging("json", level="debug", stream=stream)

    get_logger("SelfHealingMonitor").debug("medic detail")
    logging.getLogger("apscheduler.scheduler").info("Added job")

    assert [line["event"] for line in json_lines(stream)] == ["medic detail"]


def test_auto_picks_json_for_non_tty_stream() -> None:
    stream = io.StringIO()
    configure_logging("auto", stream=stream)

    get_logger("ControlPlaneOrchestrator").info("hello")

    [line] = json_lines(stream)
    assert line["event"] == "hello"


def test_auto_picks_console_for_tty_stream() -> None:
    stream = TtyStream()
    configure_logging("auto", stream=stream)

    get_logger("ControlPlaneOrchestrator").info("hello")

    assert CONSOLE_LINE.match(stream.getvalue().rstrip("\n"))


def test_logger_created_before_configuration_follows_it() -> None:
    log = get_logger("SelfHealingMonitor", service="db")
    stream = io.StringIO()
    configure_logging("json", stream=stream)

    log.info("late")

    [line] = json_lines(stream)
    assert line["service"] == "db"


def test_reconfiguring_replaces_the_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("json", stream=first)
    configure_logging("console", stream=second)

    get_logger("ControlPlaneOrchestrator").info("once")

    assert first.getvalue() == ""
    assert second.getvalue().count("once") == 1


@pytest.mark.parametrize(("fmt", "level"), [("xml", "INFO"), ("json", "LOUD")])
def test_rejects_unknown_format_or_level(fmt: str, level: str) -> None:
    with pytest.raises(ValueError):
        configure_logging(fmt, level=level, stream=io.StringIO())  # type: ignore[arg-type]


def test_every_medic_log_event_has_a_stable_name() -> None:
    """Each log call in medic names its event ``subject.what_happened``; the prose
    goes in ``message=``, so tests and log queries never match wording."""
    import ast
    import re
    from pathlib import Path

    import medic

    stable = re.compile(r"^[a-z_]+(\.[a-z_]+)+$")
    levels = {"debug", "info", "warning", "error", "exception", "critical"}
    unnamed = []
    for path in Path(medic.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            target = node.func.value
            owner = getattr(target, "id", None) or getattr(target, "attr", "")
            if node.func.attr not in levels or "log" not in owner:
                continue
            first = node.args[0] if node.args else None
            named = isinstance(first, ast.Constant) and stable.match(str(first.value))
            if not named:
                unnamed.append(f"{path.name}:{node.lineno}")
    assert unnamed == []

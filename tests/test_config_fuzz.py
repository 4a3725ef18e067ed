"""Config fuzz (hypothesis): generated YAML documents and values never crash
``medic validate`` (it exits 0, 1 or 2 only, and every error line names
FILE:LINE) nor a SIGHUP reload of a running daemon (it stays up, and keeps its
old config when the new one is invalid)."""

from __future__ import annotations

import contextlib
import io
import re
import signal
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medic.cli.main import main as medic_main
from tests.helpers import free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess
from tests.test_daemon_lifecycle import minimal_config
from tests.test_validate_cli import EXIT_INVALID, EXIT_OK, EXIT_UNREADABLE

KEYS = [
    "api", "listen", "token_env", "token_file", "tokens", "name", "scopes", "read", "admin",
    "auth_reads", "allow_unauthenticated_reads", "max_event_clients", "max_body_bytes",
    "event_client_write_timeout",
    "services", "check", "type", "http", "tcp", "postgres", "command", "process", "system",
    "container", "unit", "url", "port", "host", "dsn", "dsn_env", "interval", "timeout",
    "failure_threshold", "recovery", "service_crash", "depends_on", "enabled", "workflows",
    "steps", "action", "run_command", "http_request", "notify", "schedule", "cron", "at",
    "monitoring", "health_check_interval", "notifications", "webhooks", "events", "daemon",
    "state_dir", "log_level", "playbooks_dir", "start_command", "max_attempts", "backoff",
]  # fmt: skip
ODD_VALUES = [
    "1s", "10m", "-5s", "0", "0s", "1e400", "1h30m", "127.0.0.1:8321", "0.0.0.0:1",
    "[::1]:80", "http://u:p@127.0.0.1:1/", "postgresql://x@127.0.0.1:1/db", "*/5 * * * *",
    "", " ", "~", "null", "yes", "no", "\t", "..", "/", "\u00e9\u4e2d", "a" * 300,
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(KEYS),
    st.sampled_from(ODD_VALUES),
)
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=8), st.integers(), st.booleans())
trees = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=5)
    ),
    max_leaves=25,
)
TOP = ["api", "services", "workflows", "monitoring", "notifications", "daemon", "playbooks_dir"]
documents = st.dictionaries(st.one_of(st.sampled_from(TOP), keys), trees, max_size=6)

BASE: dict[str, Any] = {
    "api": {"listen": "127.0.0.1:8321", "token_env": "T"},
    "monitoring": {"health_check_interval": "5s"},
    "services": {
        "web": {"check": {"type": "http", "url": "http://127.0.0.1:1/"}, "interval": "2s"},
        "db": {"check": {"type": "tcp", "port": 1}, "depends_on": ["web"]},
    },
    "workflows": {
        "w": {
            "schedule": {"interval": "1h"},
            "steps": [{"name": "a", "action": "run_command", "command": ["true"]}],
        }
    },
}


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _paths(value, (*prefix, index))
    return found


@st.composite
def one_value_changed(draw: st.DrawFn) -> Any:
    """The base config with one value (or a whole section) replaced."""
    import copy

    data = copy.deepcopy(BASE)
    path = draw(st.sampled_from(_paths(data)[1:]))
    target = data
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = draw(trees)
    return data


def as_yaml(data: Any) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


BASE_TEXT = as_yaml(BASE)
YAML_BITS = [
    ":", "-", " ", "\n", "\t", "[", "]", "{", "}", "&a", "*a", "!!str", "!!python/int",
    "|", ">", "'", '"', "%", "@", "`", "#", "? ", "<<: *a", "\ufeff", "\x00", "é",
]  # fmt: skip


@st.composite
def text_spliced(draw: st.DrawFn) -> str:
    """The base config's text with bytes cut out or YAML punctuation put in."""
    text = BASE_TEXT
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 5))
        bit = draw(st.one_of(st.sampled_from(YAML_BITS), st.text(max_size=3)))
        text = text[:at] + bit + text[at + cut :]
    return text


config_texts = st.one_of(
    documents.map(as_yaml),
    one_value_changed().map(as_yaml),
    text_spliced(),
    trees.map(as_yaml),  # a top level that is not a mapping
)


def validate_in_process(path: Path) -> tuple[int, str]:
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = medic_main(["validate", "--config", str(path)])
    return code, err.getvalue()


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=config_texts)
def test_validate_never_crashes_and_every_error_names_file_and_line(
    tmp_path: Path, text: str
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    code, stderr = validate_in_process(path)
    assert code in (EXIT_OK, EXIT_INVALID, EXIT_UNREADABLE), (code, stderr)
    file_line = re.compile(rf"^(error: )?{re.escape(str(path.resolve()))}:\d+: \S")
    summary = re.compile(rf"^\d+ error\(s\) in {re.escape(str(path.resolve()))}$")
    for line in stderr.splitlines():
        if line.startswith(" ") or not line:
            continue  # a message's own continuation lines
        assert file_line.match(line) or summary.match(line), (code, line, stderr)
    if code != EXIT_OK:
        assert stderr.strip(), "a refusal says why"


def reload_outcomes(daemon: DaemonProcess) -> tuple[int, int]:
    """(reloads refused, reloads applied) so far."""
    return (
        len(daemon.find_logs(event="reload.refused")),
        len(daemon.find_logs(event="config.reloaded")),
    )


def sighup(daemon: DaemonProcess, text: str) -> bool:
    """Write ``text`` as the config, SIGHUP, wait for the outcome: True if refused."""
    refused, applied = reload_outcomes(daemon)
    daemon.write_config(text)
    daemon.send_signal(signal.SIGHUP)
    now = wait_for(
        lambda: (o := reload_outcomes(daemon)) != (refused, applied) and o,
        15,
        message="the reload's outcome logged",
    )
    return now[0] > refused


def service_names(daemon: DaemonProcess) -> list[str]:
    return sorted(s["name"] for s in daemon.get("/api/v1/services")[1]["services"])


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=config_texts)
def test_sighup_with_generated_configs_never_takes_the_daemon_down(
    medic_daemon: DaemonFactory, listening_port: int, text: str
) -> None:
    base_file = medic_daemon.dir / "base.yaml"
    if not medic_daemon.processes:  # one daemon for every example
        base_file.write_text(minimal_config(free_port(), listening_port))
        medic_daemon(base_file.read_text())
    daemon = medic_daemon.processes[0]
    base = base_file.read_text()
    before = service_names(daemon)
    refused = sighup(daemon, text)
    assert daemon.running
    assert daemon.get("/api/v1/health", timeout=5)[0] == 200
    assert not daemon.find_logs(event="reload.failed"), daemon.log_tail()
    if refused:
        assert service_names(daemon) == before  # the old config stays in force
    else:
        assert not sighup(daemon, base)  # back to the base for the next example

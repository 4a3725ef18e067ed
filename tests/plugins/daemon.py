"""The daemon: ``python -m medic run`` as a real subprocess, its log and its API.

A failed test's report gets the tail of every daemon log it started.

Fixtures
    medic_daemon  function  DaemonFactory: ``medic_daemon(config_yaml, ...) -> DaemonProcess``
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import REPO_ROOT, free_port, wait_for, write_playbooks
from tests.plugins.http import http_request, parse_body

DAEMON_START_TIMEOUT = 20.0
DAEMON_STOP_TIMEOUT = 15.0
LOG_TAIL_LINES = 100


# ---------------------------------------------------------------------------
# Report hook: failed tests get the tail of every daemon log they started.
# ---------------------------------------------------------------------------
_DAEMONS = pytest.StashKey[list["DaemonProcess"]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        for daemon in item.stash.get(_DAEMONS, []):
            if not daemon.tail_reported:
                daemon.tail_reported = True
                report.sections.append(
                    (
                        f"medic daemon log {daemon.log_path} (last {LOG_TAIL_LINES} lines)",
                        daemon.log_tail(LOG_TAIL_LINES),
                    )
                )
    return report


# ---------------------------------------------------------------------------
# The daemon process and its factory
# ---------------------------------------------------------------------------
# Variables of the developer's shell or of a supervising systemd that must not
# reach the daemon under test.
_SCRUBBED_ENV_PREFIXES = ("MEDIC_",)
_SCRUBBED_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID")


@dataclass
class DaemonProcess:
    """A running ``medic run``; see :class:`DaemonFactory`."""

    proc: subprocess.Popen[bytes]
    url: str
    listen: str
    port: int
    log_path: Path
    config_path: Path
    state_dir: Path
    tail_reported: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    # -- logs ---------------------------------------------------------------
    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def log_lines(self) -> list[dict[str, Any]]:
        """Every JSON object line of the log (other lines are skipped)."""
        records = []
        for line in self.log_text().splitlines():
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    def find_logs(self, **fields: Any) -> list[dict[str, Any]]:
        """JSON log records whose keys equal all of ``fields`` (e.g. event=...)."""
        return [r for r in self.log_lines() if all(r.get(k) == v for k, v in fields.items())]

    def wait_for_log(self, timeout: float = 10.0, **fields: Any) -> dict[str, Any]:
        """Wait until a JSON log record matches ``fields``; return the first one."""
        found = wait_for(
            lambda: self.find_logs(**fields),
            timeout,
            interval=0.1,
            message=f"no log record matching {fields}",
        )
        return found[0]

    # -- HTTP API -----------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        token: str | None = None,
        timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:
        """(status, parsed JSON body, or text when it is not JSON, or None)."""
        all_headers = {"Accept": "application/json", **(headers or {})}
        body = None
        if json_body is not None:
            body = json.dumps(json_body).encode()
            all_headers["Content-Type"] = "application/json"
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        status, raw = http_request(
            self.url + path, method=method, body=body, headers=all_headers, timeout=timeout
        )
        return status, parse_body(raw)

    def get(self, path: str, token: str | None = None, timeout: float = 10.0) -> tuple[int, Any]:
        return self.request("GET", path, token=token, timeout=timeout)

    def post(
        self, path: str, json: Any = None, token: str | None = None, timeout: float = 10.0
    ) -> tuple[int, Any]:
        return self.request("POST", path, json_body=json, token=token, timeout=timeout)

    # -- process ------------------------------------------------------------
    def send_signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def write_config(self, config_yaml: str) -> None:
        """Replace the config file (then send SIGHUP or POST /api/v1/reload)."""
        self.config_path.write_text(config_yaml)

    def wait(self, timeout: float = DAEMON_STOP_TIMEOUT) -> int:
        """Wait for the process to exit by itself; return its exit code."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"medic daemon (pid {self.pid}) still runs after {timeout:g}s"
            ) from None

    def stop(self, timeout: float = DAEMON_STOP_TIMEOUT) -> int:
        """SIGTERM and wait; return the exit code. Fails the test when it hangs."""
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"medic daemon (pid {self.pid}) did not exit within {timeout:g}s of SIGTERM"
            ) from None

    def kill(self) -> int:
        """SIGKILL the daemon (a crash: ``kill -9``); return its exit code."""
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait(timeout=DAEMON_STOP_TIMEOUT)

    def kill_group(self) -> None:
        """SIGKILL whatever is left in the daemon's process group (its children)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)


def _api_base(listen: str) -> tuple[str, int]:
    """``127.0.0.1:8321`` / ``[::1]:8321`` / ``0.0.0.0:8321`` -> (base URL, port)."""
    host, _, port = listen.rpartition(":")
    if host in ("", "0.0.0.0", "*"):
        host = "127.0.0.1"
    elif host in ("::", "[::]"):
        host = "[::1]"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}", int(port)


def _listen_from_yaml(config_yaml: str) -> str:
    """``api.listen`` of a config, or medic's default when it has none (or is not YAML)."""
    try:
        parsed = yaml.safe_load(config_yaml)
        listen = parsed["api"]["listen"]
    except (yaml.YAMLError, TypeError, KeyError):
        return "127.0.0.1:8321"
    return str(listen or "127.0.0.1:8321")


class DaemonFactory:
    """``medic_daemon(config_yaml, ...)`` starts ``python -m medic run``.

    Files live in the test's own tmp dir: ``config.yaml`` (``.config_path``),
    ``playbooks/NAME.yaml`` (``.playbooks_dir``; a config may say
    ``playbooks_dir: playbooks``, relative to the config file), ``state/``
    (``.state_dir``, kept across starts so a second start sees the first one's
    history) and ``daemon-N.log``. The YAML is written as given.
    """

    def __init__(self, tmp_path: Path, registry: list[DaemonProcess]) -> None:
        self.dir = tmp_path
        self.config_path = tmp_path / "config.yaml"
        self.playbooks_dir = tmp_path / "playbooks"
        self.state_dir = tmp_path / "state"
        self.processes = registry

    def new_port(self) -> int:
        """A free port on 127.0.0.1, e.g. for ``api.listen``."""
        return free_port()

    def write_playbooks(self, playbooks: Mapping[str, str]) -> Path:
        return write_playbooks(self.playbooks_dir, playbooks)

    def _env(self, env: Mapping[str, str | None] | None) -> dict[str, str]:
        merged = {
            k: v
            for k, v in os.environ.items()
            if k not in _SCRUBBED_ENV and not k.startswith(_SCRUBBED_ENV_PREFIXES)
        }
        merged["PYTHONUNBUFFERED"] = "1"
        source_root = str(REPO_ROOT / "daemon")
        merged["PYTHONPATH"] = os.pathsep.join(
            p for p in (source_root, merged.get("PYTHONPATH")) if p
        )
        for key, value in (env or {}).items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        return merged

    def __call__(
        self,
        config_yaml: str,
        *,
        listen: str | None = None,
        env: Mapping[str, str | None] | None = None,
        extra_args: Sequence[str] = (),
        playbooks: Mapping[str, str] | None = None,
        state_dir: Path | None = None,
        wait_healthy: bool = True,
        timeout: float = DAEMON_START_TIMEOUT,
        cwd: Path | None = None,
    ) -> DaemonProcess:
        """Write the config (and playbooks), start the daemon, wait for /api/v1/health.

        ``listen`` is the config's ``api.listen`` (read from the YAML when not
        given). ``env`` is added to the environment (a None value removes a
        variable; MEDIC_* of the caller's shell are never passed on). ``cwd`` is
        the daemon's working directory (default: the test's tmp dir, the config's).
        """
        if listen is None:
            listen = _listen_from_yaml(config_yaml)
        url, port = _api_base(listen)
        self.config_path.write_text(config_yaml)
        if playbooks:
            self.write_playbooks(playbooks)
        state = state_dir or self.state_dir
        log_path = self.dir / f"daemon-{len(self.processes) + 1}.log"
        cmd = [
            sys.executable, "-m", "medic", "run",
            "--config", str(self.config_path),
            "--state-dir", str(state),
            "--log-format", "json",
            *extra_args,
        ]  # fmt: skip
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=cwd or self.dir,
                env=self._env(env),
                start_new_session=True,
            )
        daemon = DaemonProcess(
            proc=proc,
            url=url,
            listen=listen,
            port=port,
            log_path=log_path,
            config_path=self.config_path,
            state_dir=state,
        )
        self.processes.append(daemon)
        if wait_healthy:
            self._wait_healthy(daemon, timeout)
        return daemon

    start = __call__

    @staticmethod
    def _wait_healthy(daemon: DaemonProcess, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if daemon.proc.poll() is not None:
                daemon.tail_reported = True
                pytest.fail(
                    f"medic daemon exited with code {daemon.proc.returncode} before it was"
                    f" healthy; last {LOG_TAIL_LINES} log lines:\n{daemon.log_tail()}",
                    pytrace=False,
                )
            try:
                status, body = daemon.get("/api/v1/health", timeout=1.0)
                if status == 200:
                    return
                last = f"HTTP {status}: {body!r}"
            except OSError as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.1)
        daemon.tail_reported = True
        pytest.fail(
            f"medic daemon not healthy at {daemon.url}/api/v1/health within {timeout:g}s"
            f" ({last}); last {LOG_TAIL_LINES} log lines:\n{daemon.log_tail()}",
            pytrace=False,
        )

    def cleanup(self) -> None:
        for daemon in self.processes:
            if daemon.proc.poll() is None:
                daemon.proc.send_signal(signal.SIGTERM)
                try:
                    daemon.proc.wait(timeout=DAEMON_STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    daemon.proc.kill()
                    daemon.proc.wait(timeout=DAEMON_STOP_TIMEOUT)
            # Children the daemon left behind (its own process group).
            daemon.kill_group()


@pytest.fixture
def medic_daemon(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[DaemonFactory]:
    registry: list[DaemonProcess] = []
    request.node.stash[_DAEMONS] = registry
    factory = DaemonFactory(tmp_path, registry)
    yield factory
    factory.cleanup()

"""The daemon: the orchestrator plus the HTTP API, signals and systemd
notifications. It starts the orchestrator's parts in their order (see
``medic.orchestrator``) with the API runner in its slot, on one
``Lifecycle``, and stops them in reverse."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web

from medic.api.app import build_app
from medic.api.state import ApiSettings
from medic.config.load import load_config
from medic.config.models import LoadedConfig
from medic.config.secrets import secret_values
from medic.core.errors import (
    ConfigFileError,
    ConfigInvalid,
    ConfigIssue,
    InvalidWorkflowError,
    MedicError,
)
from medic.core.lifecycle import Lifecycle, Part
from medic.core.logging import get_logger
from medic.core.redact import SecretValues
from medic.host import testhooks
from medic.host.sdnotify import SystemdNotifier
from medic.orchestrator import ControlPlaneOrchestrator

log = get_logger("Daemon")

API_IDLE_TIMEOUT_S = 15.0
"""A connection that sends no complete request for this long is closed: slow
or half-open clients cannot pile up (aiohttp's default keeps them an hour)."""

YOUNG_COLLECTION_THRESHOLD = 7_000
"""Net allocations between two young collections once started (Python's default: 700)."""

EVENT_LOOP_ENV = "MEDIC_EVENT_LOOP"
"""``asyncio`` runs the daemon on asyncio's own loop instead of uvloop (for
comparing the two; bench/checks_cpu.py and bench/scale.py use it)."""


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's event loop, or asyncio's when uvloop cannot load (one log line says so).

    uvloop (libuv, as uvicorn uses it) runs the same checks for less CPU: the
    figures are in docs/benchmarks.md, "Check CPU".
    """
    if os.environ.get(EVENT_LOOP_ENV, "").strip().lower() == "asyncio":
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError as exc:
        log.warning(
            "daemon.uvloop_unavailable",
            message="uvloop cannot load; running on asyncio's own event loop",
            error=str(exc),
        )
        return asyncio.new_event_loop
    return uvloop.new_event_loop


class StartupError(MedicError):
    """The daemon cannot start (e.g. its API address is taken)."""


class Daemon:
    def __init__(
        self,
        config_path: Path,
        *,
        state_dir: Path | None = None,
        dry_run: bool = False,
        notifier: SystemdNotifier | None = None,
        loaded: LoadedConfig | None = None,
        listen: str | None = None,
        secrets: SecretValues | None = None,
    ) -> None:
        self.config_path = config_path
        self.secrets = SecretValues() if secrets is None else secrets
        """Masked by value in the log (when it is the logging's), the API and events."""
        self.state_dir = state_dir
        self.listen = listen
        """``medic run --listen``: overrides ``api.listen`` (at every reload too)."""
        self.dry_run_flag = dry_run
        self.notifier = notifier or SystemdNotifier.from_env(unset_environment=True)
        self._stop = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self.orchestrator: ControlPlaneOrchestrator | None = None
        self.settings: ApiSettings | None = None
        self._runner: web.AppRunner | None = None
        self._preloaded = loaded
        """The config as ``medic run`` already loaded it: start-up reads it once."""

    def _load(self) -> LoadedConfig:
        """Load the config and log its warnings: the same at start and at each reload."""
        loaded = load_config(self.config_path, state_dir=self.state_dir, listen=self.listen)
        self._know_secrets(loaded)
        _log_config_warnings(loaded.warnings)
        return loaded

    def _know_secrets(self, loaded: LoadedConfig) -> None:
        values = secret_values(
            loaded.model.model_dump(mode="json"), os.environ, self.config_path.parent
        )
        self.secrets.replace(values)

    def _first_load(self) -> LoadedConfig:
        """The config ``medic run`` loaded already (its warnings logged here), else read now."""
        loaded, self._preloaded = self._preloaded, None
        if loaded is None:
            return self._load()
        self._know_secrets(loaded)
        _log_config_warnings(loaded.warnings)
        return loaded

    async def run(self) -> int:
        loaded = self._first_load()
        orch = ControlPlaneOrchestrator(
            loaded, dry_run=True if self.dry_run_flag else None, secrets=self.secrets
        )
        self.orchestrator = orch
        self.settings = ApiSettings(loaded.model.api, self.secrets)
        parts = Lifecycle()
        await parts.open(orch.parts(api=Part("api", self._serve_api(orch))))
        _settle_collector()
        watchdog = asyncio.create_task(self.notifier.run_watchdog(), name="watchdog")
        self._install_signals()
        self.notifier.ready(status=f"watching {len(loaded.services)} services")
        log.info(
            "daemon.running",
            message="medic is running",
            api=loaded.model.api.listen if loaded.model.api.enabled else None,
            services=len(loaded.services),
            dry_run=orch.dry_run,
        )
        try:
            await self._stop.wait()
        finally:
            self.notifier.stopping()
            # The port first: a restart (or a new daemon) can bind it at once,
            # while the running recoveries get their grace.
            await self._close_listener()
            log.info(
                "daemon.stopping",
                message="Shutting down: the API listener is closed, running recoveries get"
                " their grace",
                grace_s=loaded.model.daemon.shutdown_grace,
            )
            try:
                await parts.close()
            finally:
                watchdog.cancel()
                self._remove_signals()
        log.info("daemon.stopped", message="medic stopped")
        return 0

    @asynccontextmanager
    async def _serve_api(self, orch: ControlPlaneOrchestrator) -> AsyncIterator[None]:
        """The API runner's part: listening on ``api.listen`` until it stops."""
        assert self.settings is not None
        config = self.settings.config
        if not config.enabled:
            yield
            return
        app = build_app(orch, self.settings, self.reload)
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=2,
            keepalive_timeout=API_IDLE_TIMEOUT_S,
        )
        await runner.setup()
        self._runner = runner
        try:
            try:
                await web.TCPSite(runner, config.host, config.port, reuse_address=True).start()
            except OSError as exc:
                raise StartupError(
                    f"cannot listen on {config.listen} (api.listen): {exc.strerror or exc}"
                ) from exc
            yield
        finally:
            self._runner = None
            await runner.cleanup()

    async def _close_listener(self) -> None:
        """Stop accepting connections now; those open are answered until the API part closes."""
        if self._runner is not None:
            for site in list(self._runner.sites):
                await site.stop()

    def request_stop(self) -> None:
        self._stop.set()

    async def reload(self) -> dict[str, Any]:
        """Re-read the config; keep the running one if the new one is invalid."""
        assert self.orchestrator is not None and self.settings is not None
        async with self._reload_lock:
            self.notifier.reloading()
            try:
                try:
                    loaded = self._load()
                except (ConfigInvalid, ConfigFileError) as exc:
                    _log_reload_errors(exc)
                    _publish_refusal(self.orchestrator, exc)
                    raise
                if loaded.model.api.listen != self.settings.config.listen:
                    log.warning(
                        "reload.listen_deferred",
                        message="api.listen changed; the new address takes effect after a restart",
                        current=self.settings.config.listen,
                        new=loaded.model.api.listen,
                    )
                try:
                    changes = await self.orchestrator.reload(loaded)
                except InvalidWorkflowError as exc:  # refused whole: nothing changed
                    _publish_refusal(self.orchestrator, exc)
                    raise
                # Only now: a refused reload must not change the token either.
                self.settings.config = loaded.model.api.model_copy(
                    update={"listen": self.settings.config.listen}
                )
                # For the event stream and webhooks: what the reload added, removed, changed.
                self.orchestrator.bus.publish("config.reloaded", **changes)
                return changes
            finally:
                self.notifier.ready()

    def _reload_in_background(self) -> None:
        task = asyncio.create_task(self.reload(), name="reload")
        task.add_done_callback(_swallow_reload_error)

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.request_stop)
        loop.add_signal_handler(signal.SIGINT, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self._reload_in_background)
        testhooks.install(loop)

    def _remove_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        testhooks.remove(loop)


def _log_config_warnings(warnings: Sequence[ConfigIssue]) -> None:
    for warning in warnings:
        log.warning(
            "config.secret_missing",
            message="A secret the config names is missing",
            file=warning.file,
            line=warning.line,
            key=warning.dotted_path,
            detail=warning.message.removeprefix("warning: "),
        )


def _log_reload_errors(exc: ConfigInvalid | ConfigFileError) -> None:
    if isinstance(exc, ConfigInvalid):
        for issue in exc.issues:
            log.error(
                "reload.config_error",
                message=f"Config error: {issue}",
                file=issue.file,
                line=issue.line,
                path=issue.dotted_path,
                error=issue.message,
            )
        log.error(
            "reload.refused",
            message="Reload refused: the new config is invalid; still running the old one",
            errors=len(exc.issues),
        )
    else:
        log.error(
            "reload.refused",
            message=f"Reload refused: {exc}; still running the old config",
            error=str(exc),
        )


def _publish_refusal(
    orch: ControlPlaneOrchestrator, exc: ConfigInvalid | ConfigFileError | InvalidWorkflowError
) -> None:
    """``config.reload_failed``: the old config stays in force."""
    if isinstance(exc, ConfigInvalid):
        issues, detail = len(exc.issues), f"the new config is invalid ({len(exc.issues)} issues)"
    elif isinstance(exc, InvalidWorkflowError):
        issues, detail = len(exc.problems), str(exc)
    else:
        issues, detail = 1, str(exc)
    orch.bus.publish(
        "config.reload_failed",
        reason=type(exc).__name__,
        issues=issues,
        detail=detail,
        config=str(orch.config.path),
    )


def _swallow_reload_error(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        exc = task.exception()
        if not isinstance(exc, ConfigInvalid | ConfigFileError):
            log.error(
                "reload.failed", message="Reload failed", error=f"{type(exc).__name__}: {exc}"
            )


def _settle_collector() -> None:
    """Once started: out of the garbage collector's way on the checks' path."""
    # What start-up built (config models, checks, metric series, imported
    # modules) lives as long as the daemon: out of the collector's sight,
    # a full collection scans only what came later. At 1,000 services each
    # one took 55-85 ms of a stopped loop, checks due meanwhile waiting.
    gc.freeze()
    # At 700 net allocations (the default) a young collection came 16 times a
    # second at 1,000 checks a second, each finding nothing: the objects of the
    # checks in flight (tasks, futures, connections) were alive, and their frees
    # after a collection do not count down. At 7,000: a few a minute.
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])

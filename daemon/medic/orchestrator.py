"""ControlPlaneOrchestrator: the seed's Python API, and the one place the parts
are wired together. The daemon (``medic.daemon``) is this object plus the
HTTP API, signals and systemd notifications.

The long-lived parts start in this order and stop in reverse
(``ControlPlaneOrchestrator.parts``, run by ``medic.core.lifecycle``):

1. store: the state dir is locked for this daemon's life (``StateDirInUse``
   names the PID of the medic that holds it) and the SQLite history opened
   (``StateDirUnusable`` if it cannot be);
2. last stop: what a crash left is settled: step commands still running are
   ended, cut-off runs marked interrupted, old history pruned, recent recovery
   attempts counted again, the pauses in force taken back (maintenance);
3. HTTP session, 4. Docker gateway, 5. PostgreSQL pools: closed here, made on
   first use;
6. notifications: the webhook workers, then the Apprise targets' (the Apprise
   library itself is imported on the first send, so only when configured);
7. scheduler: APScheduler starts ticking (and its interval jobs are kept on
   time when the wall clock jumps: ``medic.host.wall_clock``);
8. processes: the services' ``process:`` programs are started or adopted;
9. the API runner (the daemon's slot: it listens before the first check, so
   medic's own self-check is not refused; on a stop it closes first);
10. monitor: every service's check is scheduled;
11. workflows: registered and scheduled;
12. Docker events: listened to when a service uses Docker or discovery is on
    (``docker.discover``; ``medic.watch.discovery`` adds and removes services);
13. work: the hourly prune job, the retry of history writes that wait
    (disk full) every few seconds and the ``maintenance:`` windows; stopping
    starts here: the scheduler pauses, no check is scheduled any more,
    running recoveries and workflow runs share one ``shutdown_grace``, then
    are cancelled (``interrupted``).

A part that fails to start closes those before it; one that fails to close is
logged and the others still close. ``start()``/``stop()`` enter the same list
(without an API) for in-process use; nothing opens in ``__init__``."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from medic import status_views
from medic.config.load import load_config
from medic.config.models import LoadedConfig, ProcessConfig, WorkflowConfig
from medic.core.bus import EventBus
from medic.core.lifecycle import Lifecycle, Part, pair
from medic.core.logging import get_logger
from medic.core.redact import SecretValues
from medic.core.vocabulary import FailureType, Trigger
from medic.fleet.wiring import join_fleet
from medic.heal.engine import RecoveryEngine
from medic.heal.maintenance import Maintenance
from medic.heal.run import RecoveryResult
from medic.heal.sidecars import SidecarFollower
from medic.host.resources import Resources
from medic.host.wall_clock import WallClockWatch
from medic.last_stop import settle_last_stop
from medic.store import StateDirLock, Store
from medic.store.recorder import BusRecorder
from medic.tell.apprise import AppriseNotifier
from medic.tell.metrics import Metrics
from medic.tell.webhooks import WebhookDispatcher
from medic.watch.containers import ContainerEvents, ContainerStopGate, DockerIntent
from medic.watch.discovery.docker_labels import DiscoverySettings, DockerLabelDiscovery
from medic.watch.discovery.services import WatchedServices
from medic.watch.discovery.stream import DockerStream
from medic.watch.docker_restarts import DockerRestartGate, DockerRestarts
from medic.watch.monitor import SelfHealingMonitor
from medic.watch.runner import CheckRunner
from medic.workflows.manager import WorkflowManager

log = get_logger("ControlPlaneOrchestrator")

_PRUNE_INTERVAL_S = 3600.0
HISTORY_RETRY_INTERVAL_S = 5.0
"""History writes that wait (disk full) are tried again this often (and with each new write)."""


class ControlPlaneOrchestrator:
    def __init__(
        self,
        config: LoadedConfig,
        *,
        dry_run: bool | None = None,
        secrets: SecretValues | None = None,
    ) -> None:
        self.config = config
        self.dry_run = config.dry_run if dry_run is None else dry_run
        self.started_at = time.time()
        self._wire_store_and_bus(config)
        self.resources = Resources(state_dir=config.state_dir)
        self.maintenance = Maintenance(self.store, self.bus, self.metrics)
        self._wire_notifiers(config, secrets)
        self.scheduler = AsyncIOScheduler(job_defaults={"coalesce": True})
        self.clock_watch = WallClockWatch(self.scheduler)
        self._wire_watch_and_heal(config)
        self.resources.processes.on_exit = self._on_process_exit
        self.workflows = WorkflowManager(
            scheduler=self.scheduler,
            journal=self.store,
            bus=self.bus,
            metrics=self.metrics,
            resources=self.resources,
            state_dir=config.state_dir,
            max_concurrent=config.model.daemon.workflow_concurrency,
            dry_run=self.dry_run,
        )
        self.containers = ContainerEvents(self.monitor, self._intent, self._restarts)
        self.watched = WatchedServices(self.monitor, self.bus, config.services)
        self.discovery = DockerLabelDiscovery(
            self.resources.docker, _discovery_settings(config), self.watched.apply_discovered
        )
        self.sidecars = SidecarFollower(self.resources.docker, self.bus)
        self.docker_events = DockerStream(
            self.resources.docker, self.containers, self.discovery, self.sidecars.on_event
        )
        self._lifecycle: Lifecycle | None = None
        self._grace_s: float | None = None
        self._cut_off_runs: list[int] = []
        """Workflow runs the last crash cut off: resumed once the workflows are applied."""

    def _wire_store_and_bus(self, config: LoadedConfig) -> None:
        self.store = Store.in_state_dir(config.state_dir, connect=False)
        self.state_lock = StateDirLock(config.state_dir)
        self.bus = EventBus()
        self.metrics = Metrics()
        self.store.backlog.watch(self.metrics)
        # The store first: history is written before any other listener reports it.
        self.bus.add_listener(BusRecorder(self.store))
        self.bus.add_listener(self.metrics.count_event)

    def _wire_notifiers(self, config: LoadedConfig, secrets: SecretValues | None) -> None:
        self.notifications = WebhookDispatcher(
            config.model.notifications,
            session=lambda: self.resources.http,
            metrics=self.metrics,
            secrets=secrets,
        )
        self.apprise = AppriseNotifier(
            config.model.notifications, metrics=self.metrics, public_url=config.model.api.public_url
        )
        # Nothing about a paused service is sent but its maintenance.* events.
        self.bus.add_listener(self.maintenance.quiet(self.notifications))
        self.bus.add_listener(self.maintenance.quiet(self.apprise))

    def _wire_watch_and_heal(self, config: LoadedConfig) -> None:
        """The monitor tells the engine (its listener); the engine heals the monitor's
        services. Docker's events and the stop gate share one reading of intent;
        Docker's restart policies are read once per start."""
        self.engine = RecoveryEngine(
            policy=config.model.monitoring.recovery,
            playbooks=config.playbooks,
            journal=self.store,
            bus=self.bus,
            metrics=self.metrics,
            resources=self.resources,
            state_dir=config.state_dir,
            dry_run=self.dry_run,
        )
        self._intent = DockerIntent()
        self._restarts = DockerRestarts(self.resources.docker.inspect)
        self.monitor = SelfHealingMonitor(
            services=config.services,
            runner=CheckRunner(self.resources, self.metrics),
            bus=self.bus,
            recovery=self.engine,
            gates=[ContainerStopGate(self._intent), DockerRestartGate()],
        )
        self.engine.attach(self.monitor)
        self.engine.holds.maintenance = self.maintenance
        self.engine.guardrails.watch_pauses(self.maintenance)
        self.maintenance.attach(self.monitor)
        self.fleet = join_fleet(
            config.model.fleet, self.engine, self.monitor, self.metrics.registry
        )

    @classmethod
    def from_config(
        cls, path: str | Path, *, state_dir: str | Path | None = None, dry_run: bool | None = None
    ) -> ControlPlaneOrchestrator:
        """Load and validate the config (raising ``ConfigInvalid`` with every problem)."""
        return cls(load_config(path, state_dir=state_dir), dry_run=dry_run)

    # lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start every part (no API) on the running loop; see the module docstring."""
        if self._lifecycle is not None:
            return
        self._grace_s = None
        lifecycle = Lifecycle()
        await lifecycle.open(self.parts())
        self._lifecycle = lifecycle

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop taking work, let running recoveries and runs finish (bounded), persist."""
        lifecycle, self._lifecycle = self._lifecycle, None
        if lifecycle is None:
            return
        self._grace_s = grace_s
        await lifecycle.close()

    def _start_notifiers(self) -> None:
        self.notifications.start()
        self.apprise.start()

    async def _stop_notifiers(self) -> None:
        """Webhooks and Apprise targets flush what is queued side by side (5 s at most)."""
        await asyncio.gather(self.notifications.stop(), self.apprise.stop())

    def parts(self, api: Part | None = None) -> Iterator[Part]:
        """The long-lived parts in start order; ``api`` goes in its slot."""
        yield Part("store", pair(self._open_store, self._close_store))
        # Closed last but the store: everything that ran on the history has stopped.
        yield Part("last stop", pair(self._settle_last_stop, _log_stopped))
        yield Part("http session", pair(None, self.resources.close_http))
        yield Part("docker gateway", pair(None, self.resources.docker.close))
        yield Part("postgres pools", pair(None, self.resources.postgres.close))
        yield Part("notifications", pair(self._start_notifiers, self._stop_notifiers))
        yield Part("scheduler", pair(self._start_scheduler, self._shutdown_scheduler))
        yield Part("processes", pair(self._start_processes, self.resources.processes.shutdown))
        if api is not None:
            yield api
        if self.fleet is not None:  # the coordinator joins before the first check
            yield Part("fleet", pair(self.fleet.start, self.fleet.stop))
        yield Part("monitor", pair(self.monitor.start, self._close_monitor))
        yield Part("workflows", pair(self._apply_workflows, self._shutdown_workflows))
        yield Part("docker events", pair(self.docker_events.start, self._stop_docker_events))
        yield Part("work", pair(self._take_work, self._stop_taking_work))

    def _open_store(self) -> None:
        # The lock first: a second daemon must stop before it touches the
        # history or ends the step commands the first one is running.
        self.state_lock.acquire()
        self.store.open()

    def _close_store(self) -> None:
        try:
            self.store.close()
        finally:
            self.state_lock.release()

    def _grace(self) -> float:
        return self.config.model.daemon.shutdown_grace if self._grace_s is None else self._grace_s

    async def _settle_last_stop(self) -> None:
        self._cut_off_runs = await settle_last_stop(
            self.store, self.engine, dry_run=self.dry_run, prune=self._prune
        )
        self.maintenance.restore()  # pauses survive a restart

    def _start_scheduler(self) -> None:
        self.scheduler.start()
        self.clock_watch.start()

    def _shutdown_scheduler(self) -> None:
        self.clock_watch.stop()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    async def _close_monitor(self) -> None:
        # The recoveries its checks started: ended already by "work", unless a
        # part after this one failed to start.
        await self.engine.shutdown(self._grace())
        await self.monitor.close()

    async def _start_processes(self) -> None:
        await self.resources.processes.apply(_processes(self.config), start=not self.dry_run)

    async def _apply_workflows(self) -> None:
        await self.workflows.apply(self.config.model.workflows)
        cut_off, self._cut_off_runs = self._cut_off_runs, []
        self.workflows.resume_cut_off(cut_off)

    async def _shutdown_workflows(self) -> None:
        await self.workflows.shutdown(self._grace())

    def discovery_errors(self) -> list[dict[str, str]]:
        """Containers that are not watched because of a label, and why."""
        return [error.as_json() for error in self.watched.errors]

    async def _stop_docker_events(self) -> None:
        await self.docker_events.stop()
        await self.sidecars.stop()

    def _take_work(self) -> None:
        # Coroutines, so that they run on the loop like every other use of the
        # store's connection (APScheduler runs a plain function in a thread).
        self.scheduler.add_job(
            self._prune_job, "interval", seconds=_PRUNE_INTERVAL_S, id="medic:prune"
        )
        self.scheduler.add_job(
            self._retry_history,
            "interval",
            seconds=HISTORY_RETRY_INTERVAL_S,
            id="medic:history-retry",
        )
        self.maintenance.apply_windows(self.config.model.maintenance)
        log.info(
            "orchestrator.started",
            message="Orchestrator started",
            services=len(self.config.services),
            workflows=len(self.config.model.workflows),
            dry_run=self.dry_run,
        )

    async def _stop_taking_work(self) -> None:
        # First of all: no job fires and no check starts while the recoveries
        # already running get their grace.
        if self.scheduler.running:
            self.scheduler.pause()
        self.monitor.stop_scheduling()
        self.maintenance.close()
        # One grace for both, not one after the other.
        grace = self._grace()
        await asyncio.gather(self.engine.shutdown(grace), self.workflows.shutdown(grace))

    async def reload(self, config: LoadedConfig) -> dict[str, Any]:
        """Apply a validated config: only what changed is touched."""
        # Workflows first: their apply checks every definition before it changes
        # anything, so a refusal leaves the services as they were too.
        workflows = await self.workflows.apply(config.model.workflows)
        self.workflows.set_max_concurrent(config.model.daemon.workflow_concurrency)
        services = await self.watched.apply_yaml(config.services)
        processes = await self.resources.processes.apply(
            _processes(config), start=not (self.dry_run or config.dry_run)
        )
        self.engine.reconfigure(
            config.model.monitoring.recovery, config.playbooks, self.dry_run or config.dry_run
        )
        webhooks = self.notifications.apply(config.model.notifications)
        self.maintenance.apply_windows(config.model.maintenance)
        apprise = self.apprise.apply(config.model.notifications, config.model.api.public_url)
        self.config = config
        self.discovery.reconfigure(_discovery_settings(config))
        self.docker_events.start()
        changes = {
            "services": services,
            "workflows": workflows,
            "processes": processes,
            "webhooks": webhooks,
            "apprise": apprise,
        }
        log.info("config.reloaded", message="Configuration reloaded", **changes)
        return changes

    async def _prune_job(self) -> None:
        self._prune()

    async def _retry_history(self) -> None:
        self.store.retry()

    def _prune(self) -> None:
        retention = self.config.model.daemon.retention
        removed = self.store.prune(retention.max_age, retention.max_rows)
        if removed:
            log.info("history.pruned", message="Pruned old history", rows=removed)

    def _on_process_exit(self, service: str, returncode: int | None) -> None:
        # The exit is news now; the check confirms it and recovery goes through its playbook.
        self.monitor.request_check(service)

    # the seed's API ------------------------------------------------------------------

    async def register_workflow(
        self, workflow_id: str, config: WorkflowConfig | Mapping[str, Any]
    ) -> None:
        await self.workflows.register(workflow_id, config)

    async def start_workflow(self, workflow_id: str) -> int:
        return await self.workflows.start(workflow_id)

    async def stop_workflow(self, workflow_id: str) -> bool:
        return await self.workflows.stop(workflow_id)

    async def health_check(self, service: str) -> bool:
        """Check the service now; True when the check passes."""
        result = await self.monitor.probe_now(service)
        return result.healthy

    async def auto_recover(
        self,
        service_name: str,
        failure_type: str | FailureType | None = None,
        *,
        dry_run: bool | None = None,
        trigger: Trigger = Trigger.MANUAL,
    ) -> RecoveryResult:
        """Run the service's recovery for ``failure_type`` now and wait for it."""
        ft = FailureType(failure_type) if failure_type else None
        task = self.engine.recover_now(service_name, ft, trigger=trigger, dry_run=dry_run)
        return await task

    async def get_system_status(self) -> dict[str, Any]:
        return self.system_status()

    def system_status(self) -> dict[str, Any]:
        return status_views.system_status(self)

    def service_status(self, name: str) -> dict[str, Any]:
        return status_views.service_status(self, name)


def _log_stopped() -> None:
    log.info("orchestrator.stopped", message="Orchestrator stopped")


def _discovery_settings(config: LoadedConfig) -> DiscoverySettings:
    return DiscoverySettings.from_config(config.model, config.playbooks, os.environ)


def _processes(config: LoadedConfig) -> dict[str, ProcessConfig]:
    return {name: spec.process for name, spec in config.services.items() if spec.process}

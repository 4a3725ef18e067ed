"""The ``start_service`` action: start the service if it is down, by whatever runs it.

The first of these that is configured is used:

1. the step's ``command`` (an argv list);
2. the service's ``container:`` (started, or unpaused, if it is not running);
3. the service's ``unit:`` (``systemctl start`` unless it is already active);
4. the service's ``process:`` (started by medic's supervisor unless it runs);
5. the service's ``start_command:``.

A command (1 or 5) runs only when the service's own check fails: nothing else
tells whether what it starts is running.

A service with none of them (a database on another host) has nothing medic can
start: the step says so and succeeds, so the playbook goes on to its next step.
"""

from __future__ import annotations

import shlex

from medic.config.actions import StartServiceOptions
from medic.heal.actions.base import Action, ActionContext, ActionError, ActionResult
from medic.heal.actions.restart_unit import unit_state
from medic.heal.actions.start_container import StartContainer
from medic.host import systemd as units
from medic.host.processes import ProcessStartError
from medic.host.subprocesses import CompletedRun, run_captured


class StartService(Action[StartServiceOptions]):
    """``action: start_service``; ok when the service is started or was already up."""

    yaml_name = "start_service"
    options_model = StartServiceOptions
    default_timeout_s = 60.0

    def describe(self, ctx: ActionContext) -> str:
        how, target = self._how(ctx)
        if how == "nothing":
            return f"start {_service(ctx)}: nothing configured to start it"
        return f"start {_service(ctx)} ({how} {target}) if it is down"

    async def run(self, ctx: ActionContext) -> ActionResult:
        how, target = self._how(ctx)
        if how == "container":
            return await _start_container(ctx)
        if how == "unit":
            return await _start_unit(target)
        if how == "supervised process":
            return await _start_process(ctx, target)
        if how in ("command", "start_command"):
            return await self._start_by_command(ctx)
        return ActionResult(
            ok=True,
            detail=(
                f"nothing to start: {_service(ctx)} names no container, unit, process or"
                " start_command (medic does not run it)"
            ),
        )

    def _how(self, ctx: ActionContext) -> tuple[str, str]:
        """How the service is started, and the target in words."""
        svc = ctx.service
        if self.options.command:
            return "command", shlex.join(self.options.command)
        if svc is not None and svc.container:
            return "container", svc.container
        if svc is not None and svc.unit:
            return "unit", svc.unit
        if svc is not None and svc.name in ctx.resources.processes:
            return "supervised process", svc.name
        if svc is not None and svc.start_command:
            return "start_command", shlex.join(svc.start_command)
        return "nothing", ""

    def _argv(self, ctx: ActionContext) -> list[str]:
        if self.options.command:
            return list(self.options.command)
        assert ctx.service is not None and ctx.service.start_command is not None
        return list(ctx.service.start_command)

    async def _start_by_command(self, ctx: ActionContext) -> ActionResult:
        # Whether a program started by a command runs is only known from the
        # service's own check; a start command run on a running service may fail.
        if ctx.run_check is not None:
            probe = await ctx.run_check()
            if probe.healthy:
                return ActionResult(ok=True, detail=f"already up: {probe.detail}")
        argv = self._argv(ctx)
        try:
            run = await run_captured(argv, kill_grace_s=self.options.kill_grace)
        except OSError as exc:
            raise ActionError(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
        return _command_result(argv, run)


def _service(ctx: ActionContext) -> str:
    return ctx.service.name if ctx.service is not None else "the service"


async def _start_container(ctx: ActionContext) -> ActionResult:
    options = StartContainer.options_model.model_validate({"action": StartContainer.yaml_name})
    return await StartContainer(options).run(ctx)


async def _start_unit(unit: str) -> ActionResult:
    before = await unit_state(unit)
    if before.up:
        return ActionResult(ok=True, detail=f"unit {unit} is already {before.summary()}")
    run = await units.call("start", unit)
    after = await unit_state(unit)
    ok = run.returncode == 0
    detail = f"started unit {unit}" if ok else f"systemctl start {unit} exited {run.returncode}"
    return ActionResult(
        ok=ok,
        detail=f"{detail}: {after.summary()}",
        output=run.output_tail,
        data={"unit": unit, "before": before.as_dict(), "after": after.as_dict()},
    )


async def _start_process(ctx: ActionContext, service: str) -> ActionResult:
    processes = ctx.resources.processes
    pid = processes.pid(service)
    if pid is not None:
        return ActionResult(
            ok=True, detail=f"the process of {service} already runs (pid {pid})", data={"pid": pid}
        )
    try:
        pid = await processes.start(service)
    except ProcessStartError as exc:
        raise ActionError(f"cannot start the process of {service}: {exc}") from exc
    return ActionResult(
        ok=True, detail=f"started the process of {service} (pid {pid})", data={"pid": pid}
    )


def _command_result(argv: list[str], run: CompletedRun) -> ActionResult:
    ok = run.returncode == 0
    verdict = "started with" if ok else f"exit {run.returncode} from"
    return ActionResult(
        ok=ok,
        detail=f"{verdict} {shlex.join(argv)}",
        output=run.output_tail,
        data={"exit_code": run.returncode, "duration_s": round(run.duration_s, 3)},
    )

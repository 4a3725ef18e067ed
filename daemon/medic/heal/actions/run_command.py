"""The ``run_command`` action: run a program (an argv list; a shell only if asked).

The process runs in its own session; if the step is cancelled (its timeout,
shutdown), the whole tree it started is terminated, see ``medic.host.subprocesses``.
Its session is recorded while it runs (``ActionContext.sessions``): if the
daemon is killed meanwhile, the next start ends it (``medic.orchestrator``).
It inherits the daemon's environment plus ``MEDIC_STATE_DIR`` (the daemon's
state dir, absolute), in a recovery ``MEDIC_SERVICE``, ``MEDIC_FAILURE_TYPE``,
``MEDIC_RECOVERY_ID`` and, where the service has them, ``MEDIC_CONTAINER``,
``MEDIC_UNIT`` and ``MEDIC_PID`` (so one hook script serves every service),
and the step's ``env``. A relative ``cwd`` is relative to
the file the step is written in, like every path in the config, and a step
without ``cwd`` runs in that file's folder (the config file's for a workflow,
the playbook's for a playbook), never in the daemon's working directory
(``/`` under systemd): ``command: [./hello.sh]`` finds the script beside it.
"""

from __future__ import annotations

import shlex
import signal

from medic.config.actions import RunCommandOptions
from medic.heal.actions.base import Action, ActionContext, ActionError, ActionResult
from medic.host.subprocesses import CompletedRun, run_captured

STATE_DIR_ENV = "MEDIC_STATE_DIR"


class RunCommand(Action[RunCommandOptions]):
    """``action: run_command``; ok when the exit code is in ``ok_exit_codes``."""

    yaml_name = "run_command"
    options_model = RunCommandOptions

    def describe(self, ctx: ActionContext) -> str:
        where = f" in {self.options.cwd}" if self.options.cwd else ""
        return f"run {shlex.join(self.options.argv())}{where}"

    async def run(self, ctx: ActionContext) -> ActionResult:
        argv = self.options.argv()
        try:
            completed = await run_captured(
                argv,
                cwd=self.options.cwd,
                env={**hook_env(ctx), **self.options.env},
                kill_grace_s=self.options.kill_grace,
                tracker=ctx.sessions,
            )
        except OSError as exc:
            raise ActionError(f"cannot run {argv[0]}: {_os_error(exc)}") from exc
        return self._result(completed)

    def _result(self, completed: CompletedRun) -> ActionResult:
        code = completed.returncode
        ok = code in self.options.ok_exit_codes
        detail = _exit_detail(code)
        if not ok:
            expected = ", ".join(str(c) for c in self.options.ok_exit_codes)
            detail += f" (expected {expected})"
        return ActionResult(
            ok=ok,
            detail=detail,
            output=completed.output_tail,
            data={"exit_code": code, "duration_s": round(completed.duration_s, 3)},
        )


def hook_env(ctx: ActionContext) -> dict[str, str]:
    """What a step's command is told about the recovery it runs in."""
    env = {STATE_DIR_ENV: str(ctx.state_dir)}
    service = ctx.service
    if service is None:
        return env
    env["MEDIC_SERVICE"] = service.name
    facts = {
        "MEDIC_FAILURE_TYPE": ctx.failure_type,
        "MEDIC_RECOVERY_ID": None if ctx.recovery_id is None else str(ctx.recovery_id),
        "MEDIC_CONTAINER": service.container,
        "MEDIC_UNIT": service.unit,
    }
    env.update({key: value for key, value in facts.items() if value})
    if service.name in ctx.resources.processes:
        pid = ctx.resources.processes.info(service.name).pid
        if pid is not None:
            env["MEDIC_PID"] = str(pid)
    return env


def _exit_detail(code: int) -> str:
    if code < 0:
        return f"killed by signal {_signal_name(-code)}"
    return f"exit {code}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _os_error(exc: OSError) -> str:
    if exc.strerror and exc.filename:
        return f"{exc.strerror}: {exc.filename}"
    return exc.strerror or str(exc)

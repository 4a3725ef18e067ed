"""The ``run_command`` action: run a program (an argv list; a shell only if asked).

The process runs in its own session; if the step is cancelled (its timeout,
shutdown), the whole tree it started is terminated, see ``medic.host.subprocesses``.
Its session is recorded while it runs (``ActionContext.sessions``): if the
daemon is killed meanwhile, the next start ends it (``medic.orchestrator``).
It inherits the daemon's environment plus ``MEDIC_STATE_DIR`` (the daemon's
state dir, absolute) and the step's ``env``. A relative ``cwd`` is relative to
the file the step is written in, like every path in the config, and a step
without ``cwd`` runs in that file's folder (the config file's for a workflow,
the playbook's for a playbook), never in the daemon's working directory
(``/`` under systemd): ``command: [./hello.sh]`` finds the script beside it.
"""

from __future__ import annotations

import shlex
import signal
from typing import Any, Literal

from pydantic import Field, ValidationInfo, model_validator

from medic.config.types import Argv, Duration, RelPath
from medic.heal.actions.base import Action, ActionContext, ActionError, ActionOptions, ActionResult
from medic.host.subprocesses import CompletedRun, run_captured

SHELL = "/bin/sh"
STATE_DIR_ENV = "MEDIC_STATE_DIR"


class Options(ActionOptions):
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
    def _argv_unless_shell(self) -> Options:
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


class RunCommand(Action[Options]):
    """``action: run_command``; ok when the exit code is in ``ok_exit_codes``."""

    name = "run_command"
    options_model = Options

    def describe(self, ctx: ActionContext) -> str:
        where = f" in {self.options.cwd}" if self.options.cwd else ""
        return f"run {shlex.join(self.options.argv())}{where}"

    async def run(self, ctx: ActionContext) -> ActionResult:
        argv = self.options.argv()
        try:
            completed = await run_captured(
                argv,
                cwd=self.options.cwd,
                env={STATE_DIR_ENV: str(ctx.state_dir), **self.options.env},
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

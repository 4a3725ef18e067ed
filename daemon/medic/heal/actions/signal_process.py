"""The ``signal_process`` action: send one signal to a process.

The target is ``pid``, else the process ``pidfile`` names, else the service's
own process (``process:``). ``signal`` is a name with or without ``SIG``
(``HUP``, ``SIGUSR1``) or a number. The signal goes through a pidfd, so a PID that was
reused meanwhile is never hit.
"""

from __future__ import annotations

import contextlib
import os
import signal

from medic.config.actions import SignalProcessOptions, parse_signal
from medic.heal.actions._processes import require_process
from medic.heal.actions.base import Action, ActionContext, ActionError, ActionResult
from medic.host.processes.pidfiles import pid_alive, read_pidfile


class SignalProcess(Action[SignalProcessOptions]):
    """``action: signal_process``."""

    yaml_name = "signal_process"
    options_model = SignalProcessOptions
    default_timeout_s = 5.0

    def describe(self, ctx: ActionContext) -> str:
        return f"send {self.options.signal} to {self._target_text(ctx)}"

    async def run(self, ctx: ActionContext) -> ActionResult:
        pid = self._resolve(ctx)
        signum = parse_signal(self.options.signal)
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError as exc:
            raise ActionError(f"process {pid} is not running") from exc
        try:
            signal.pidfd_send_signal(fd, signum)
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)
        return ActionResult(
            ok=True,
            detail=f"sent {signum.name} to pid {pid}",
            data={"pid": pid, "signal": signum.name},
        )

    def _resolve(self, ctx: ActionContext) -> int:
        opts = self.options
        if opts.pid is not None:
            return opts.pid
        if opts.pidfile is not None:
            pid = read_pidfile(opts.pidfile)
            if pid is None or not pid_alive(pid):
                raise ActionError(f"pidfile {opts.pidfile} names no running process")
            return pid
        service = require_process(ctx, self.yaml_name)
        running = ctx.resources.processes.pid(service)
        if running is None:
            raise ActionError(f"{service}'s process is not running")
        return running

    def _target_text(self, ctx: ActionContext) -> str:
        opts = self.options
        if opts.pid is not None:
            return f"pid {opts.pid}"
        if opts.pidfile is not None:
            return f"the process in {opts.pidfile}"
        service = require_process(ctx, self.yaml_name)
        pid = ctx.resources.processes.pid(service)
        return f"{service}'s process (pid {pid if pid is not None else 'none: not running'})"

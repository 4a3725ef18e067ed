"""The ``type: command`` check: run a program; exit 0 is healthy.

Any other exit (or death by a signal) is an ``unhealthy_response`` whose
detail ends with the tail of what the program printed. The program runs in
its own session: when the runner's timeout cancels the check, the whole tree
it started is ended (see ``medic.host.subprocesses``) and the runner reports a
``connection_timeout``. A program that cannot be started at all is a check
error (failure type unknown): the config is wrong, not the service.
"""

from __future__ import annotations

import shlex
import signal
from typing import Any

from medic.config.checks import CommandCheckOptions
from medic.core.vocabulary import FailureType
from medic.host.subprocesses import CompletedRun, run_captured
from medic.watch.checks.base import Check, CheckResult

DETAIL_OUTPUT_CHARS = 300
DATA_OUTPUT_CHARS = 2000


class CommandCheck(Check[CommandCheckOptions]):
    """``type: command``: healthy when the program exits with an ``ok_exit_codes`` code."""

    yaml_name = "command"
    options_model = CommandCheckOptions

    async def probe(self) -> CheckResult:
        opts = self.options
        run = await run_captured(
            opts.command, cwd=opts.cwd, env=opts.env, kill_grace_s=opts.kill_grace
        )
        return self._judge(run)

    def _judge(self, run: CompletedRun) -> CheckResult:
        exit_text = _exit_text(run.returncode)
        output = run.output_tail.strip()
        data: dict[str, Any] = {"exit_code": run.returncode, "output": output[-DATA_OUTPUT_CHARS:]}
        if run.returncode in self.options.ok_exit_codes:
            return CheckResult.ok(f"{shlex.join(self.options.command)}: {exit_text}", **data)
        detail = f"{shlex.join(self.options.command)}: {exit_text}" + _tail(output)
        return CheckResult.fail(FailureType.UNHEALTHY_RESPONSE, detail, **data)


def _exit_text(code: int) -> str:
    if code >= 0:
        return f"exit {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


def _tail(output: str) -> str:
    text = " ".join(output.split())
    if not text:
        return " (no output)"
    if len(text) > DETAIL_OUTPUT_CHARS:
        text = "..." + text[-DETAIL_OUTPUT_CHARS:]
    return f": {text}"

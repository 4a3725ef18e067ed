"""systemd units through ``systemctl``: the calls medic makes and the parsing of
what ``systemctl show`` prints.

Building the argv and parsing the output are plain functions, tested on
fixture text; the few coroutines that run ``systemctl`` go through
``medic.host.subprocesses.run_captured``, so a cancelled call leaves nothing behind.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from medic.host import HostError
from medic.host.subprocesses import CompletedRun, run_captured

SYSTEMCTL = "systemctl"
SHOW_PROPERTIES = (
    "LoadState", "ActiveState", "SubState", "NRestarts", "Result", "ExecMainCode", "ExecMainStatus"
)  # fmt: skip
START_LIMIT_HIT = "start-limit-hit"
_UP_STATES = frozenset({"active", "reloading", "activating"})


class SystemctlError(HostError):
    """``systemctl`` ran and failed, or printed something medic cannot read."""

    def __init__(self, argv: list[str], run: CompletedRun) -> None:
        self.argv = argv
        self.run = run
        output = " ".join(run.output_tail.split())[-300:]
        super().__init__(f"{' '.join(argv)} exited {run.returncode}: {output or 'no output'}")


def systemctl_argv(verb: str, unit: str, *options: str) -> list[str]:
    """``systemctl VERB [OPTIONS] -- UNIT``; never prompts for a password."""
    # "--" keeps a unit name from ever being read as an option.
    return [SYSTEMCTL, "--no-ask-password", verb, *options, "--", unit]


def show_argv(unit: str) -> list[str]:
    return systemctl_argv("show", unit, "--property=" + ",".join(SHOW_PROPERTIES))


def parse_show(text: str) -> dict[str, str]:
    """``Key=Value`` lines (as ``systemctl show`` prints them) as a dict.

    Lines without ``=`` (warnings on the merged stderr) are skipped; a value may
    itself contain ``=``.
    """
    properties = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and " " not in key:
            properties[key] = value
    return properties


@dataclass(frozen=True)
class UnitState:
    """What ``systemctl show`` says about one unit."""

    unit: str
    load_state: str
    active_state: str
    sub_state: str
    result: str
    n_restarts: int | None
    """Restarts systemd itself made (``Restart=``); None when systemd does not count them."""
    exec_main_code: int | None = None
    """How the main process last ended (``ExecMainCode``): 1 exited, 2 killed, 3 dumped core."""
    exec_main_status: int | None = None
    """Its exit status, or the signal number that ended it (``ExecMainStatus``)."""

    @classmethod
    def from_properties(cls, unit: str, properties: Mapping[str, str]) -> UnitState:
        restarts = properties.get("NRestarts", "")
        return cls(
            unit=unit,
            load_state=properties.get("LoadState", ""),
            active_state=properties.get("ActiveState", ""),
            sub_state=properties.get("SubState", ""),
            result=properties.get("Result", ""),
            n_restarts=_number(restarts),
            exec_main_code=_number(properties.get("ExecMainCode", "")),
            exec_main_status=_number(properties.get("ExecMainStatus", "")),
        )

    @property
    def exists(self) -> bool:
        return self.load_state not in ("not-found", "")

    @property
    def failed(self) -> bool:
        return self.active_state == "failed"

    @property
    def up(self) -> bool:
        return self.active_state in _UP_STATES

    @property
    def start_limit_hit(self) -> bool:
        return self.result == START_LIMIT_HIT

    def main_exit(self) -> str | None:
        """``killed by SIGKILL`` or ``exited with status 3``; None when it has not ended."""
        code, status = self.exec_main_code, self.exec_main_status
        if code == _CLD_EXITED:
            return f"exited with status {status}"
        if code in (_CLD_KILLED, _CLD_DUMPED) and status is not None:
            dumped = " (core dumped)" if code == _CLD_DUMPED else ""
            return f"killed by {_signal_name(status)}{dumped}"
        return None

    def summary(self) -> str:
        """``failed (failed), result start-limit-hit, 5 restarts``."""
        text = f"{self.active_state or 'unknown'} ({self.sub_state or 'unknown'})"
        if self.result and self.result != "success":
            text += f", result {self.result}"
        if self.n_restarts is not None:
            text += f", {self.n_restarts} restart{'' if self.n_restarts == 1 else 's'}"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "ActiveState": self.active_state,
            "SubState": self.sub_state,
            "NRestarts": self.n_restarts,
            "Result": self.result,
            "LoadState": self.load_state,
        }


_CLD_EXITED, _CLD_KILLED, _CLD_DUMPED = 1, 2, 3  # waitid(2) si_code values


def _number(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


async def show(unit: str) -> UnitState:
    argv = show_argv(unit)
    run = await run_captured(argv, kill_grace_s=1.0)
    properties = parse_show(run.output_tail)
    if run.returncode != 0 or "ActiveState" not in properties:
        raise SystemctlError(argv, run)
    return UnitState.from_properties(unit, properties)


async def call(verb: str, unit: str) -> CompletedRun:
    """``systemctl VERB UNIT`` (start, restart, reset-failed, ...); the caller judges the exit."""
    return await run_captured(systemctl_argv(verb, unit), kill_grace_s=5.0)


async def check(verb: str, unit: str) -> CompletedRun:
    """Like :func:`call`, raising ``SystemctlError`` on a non-zero exit."""
    argv = systemctl_argv(verb, unit)
    run = await run_captured(argv, kill_grace_s=5.0)
    if run.returncode != 0:
        raise SystemctlError(argv, run)
    return run

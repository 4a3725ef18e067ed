"""The ``restart_unit`` action: ``systemctl restart`` the service's systemd unit.

A unit in ``failed`` state (for example after systemd's start limit was hit:
``StartLimitBurst`` starts within ``StartLimitIntervalSec``) refuses to start
until ``systemctl reset-failed`` clears it, so with ``reset_failed: true`` (the
default) that runs first. Afterwards the unit's ``ActiveState``, ``SubState``,
``NRestarts`` and ``Result`` are read back and reported.
"""

from __future__ import annotations

from medic.config.actions import RestartUnitOptions
from medic.heal.actions.base import Action, ActionContext, ActionError, ActionResult
from medic.host import systemd as units
from medic.host.subprocesses import CompletedRun
from medic.host.systemd import SystemctlError, UnitState


def unit_name(explicit: str | None, ctx: ActionContext, action: str) -> str:
    """The step's own unit, else the service's; an ``ActionError`` when neither names one."""
    name = explicit or (ctx.service.unit if ctx.service is not None else None)
    if not name:
        raise ActionError(f"{action} needs a unit: set `unit:` on the step or on the service")
    return name


async def unit_state(unit: str) -> UnitState:
    """``systemctl show`` for an existing unit, as an ``ActionError`` otherwise."""
    try:
        state = await units.show(unit)
    except SystemctlError as exc:
        raise ActionError(str(exc)) from exc
    except OSError as exc:
        raise ActionError(f"cannot run systemctl: {exc.strerror or exc}") from exc
    if not state.exists:
        raise ActionError(f"unit {unit} does not exist (LoadState={state.load_state})")
    return state


class RestartUnit(Action[RestartUnitOptions]):
    """``action: restart_unit``; ok when ``systemctl restart`` succeeds."""

    yaml_name = "restart_unit"
    options_model = RestartUnitOptions
    default_timeout_s = 120.0
    """systemd's own stop timeout is 90 s by default."""

    def describe(self, ctx: ActionContext) -> str:
        unit = unit_name(self.options.unit, ctx, self.yaml_name)
        first = "reset-failed if failed, then " if self.options.reset_failed else ""
        return f"{first}systemctl restart {unit}"

    async def run(self, ctx: ActionContext) -> ActionResult:
        unit = unit_name(self.options.unit, ctx, self.yaml_name)
        before = await unit_state(unit)
        notes = []
        if self.options.reset_failed and before.failed:
            await units.check("reset-failed", unit)
            notes.append(f"reset-failed first (was {before.summary()})")
        restart = await units.call("restart", unit)
        after = await unit_state(unit)
        return self._result(unit, restart, before, after, notes)

    def _result(
        self,
        unit: str,
        restart: CompletedRun,
        before: UnitState,
        after: UnitState,
        notes: list[str],
    ) -> ActionResult:
        ok = restart.returncode == 0
        if ok:
            detail = f"restarted {unit}: {after.summary()}"
        elif after.start_limit_hit:
            detail = f"systemd refuses to start {unit}: start limit hit ({after.summary()})"
            if not self.options.reset_failed:
                detail += "; reset_failed is off"
        else:
            detail = f"systemctl restart {unit} exited {restart.returncode}: {after.summary()}"
        return ActionResult(
            ok=ok,
            detail="; ".join([detail, *notes]),
            output=restart.output_tail,
            data={
                "unit": unit,
                "before": before.as_dict(),
                "after": after.as_dict(),
                "reset_failed": bool(notes),
            },
        )

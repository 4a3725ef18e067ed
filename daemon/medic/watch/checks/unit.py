"""The ``type: unit`` check: a systemd unit's state, as ``systemctl show`` reports it.

``active`` and ``reloading`` are healthy. ``failed``, or ``inactive`` after an
unclean end, is a definitive ``service_crash``; when systemd's start limit was
hit the detail says so and how to clear it. ``inactive`` after a clean stop
is an operator's ``systemctl stop``: the result says so (``operator_stop``)
and the monitor leaves the service alone (unless ``respect_manual_stop: false``).
Transitions (starting, stopping, systemd's own ``Restart=`` pending) fail
without being definitive, so systemd gets ``failure_threshold`` checks to
finish them. :func:`refine` (through :class:`UnitRefiner`) lends the same
verdict to another check's failure on a service with a ``unit:``.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from medic.config.checks import UnitCheckOptions
from medic.core.vocabulary import FailureType
from medic.host import systemd as units
from medic.host.systemd import SystemctlError, UnitState
from medic.watch.checks.base import REFINE_TIMEOUT_S, Check, CheckResult, CheckTarget, Refiner

if TYPE_CHECKING:
    from medic.config.models import ServiceSpec
    from medic.host.resources import Resources

OPERATOR_STOP = "operator_stop"
"""The figure (result data key) that repeats ``CheckResult.operator_stop`` for
notifications and records; the monitor reads the result's field."""

_HEALTHY = frozenset({"active", "reloading"})


def resolve_unit(options: UnitCheckOptions, target: CheckTarget) -> str:
    """The unit to read (``medic validate`` rejects a unit check without one)."""
    name = options.unit or target.unit
    if not name:
        raise ValueError(
            f"service {target.service!r}: a unit check needs `unit:` on the check or on the service"
        )
    return name


class UnitRefiner(Refiner):
    """A ``unit:`` that systemd reports failed, or stopped on purpose, decides the verdict."""

    def applies(self, spec: ServiceSpec) -> bool:
        return bool(spec.unit) and spec.check.type != UnitCheck.yaml_name

    async def refine(
        self, spec: ServiceSpec, result: CheckResult, resources: Resources
    ) -> CheckResult:
        if not spec.unit:
            return result
        try:
            async with asyncio.timeout(REFINE_TIMEOUT_S):
                state = await units.show(spec.unit)
        except (TimeoutError, OSError, SystemctlError):
            return result
        return refine(result, state)


class UnitCheck(Check[UnitCheckOptions]):
    """``type: unit``: healthy while systemd reports the unit active."""

    yaml_name = "unit"
    options_model = UnitCheckOptions
    refiner = UnitRefiner()

    async def probe(self) -> CheckResult:
        unit = resolve_unit(self.options, self.target)
        try:
            state = await units.show(unit)
        except (SystemctlError, OSError) as exc:
            # systemd itself not answering says nothing about the unit: cannot tell.
            return CheckResult(healthy=False, detail=f"cannot read {unit}: {exc}")
        return judge_unit(state)


def judge_unit(state: UnitState) -> CheckResult:
    """The verdict on one unit's ``systemctl show`` properties, which always
    says whether the unit was stopped on purpose."""
    verdict = _judge(state, {"unit": state.unit, **state.as_dict()})
    stopped = verdict.operator_stop is True
    return replace(verdict, operator_stop=stopped, data={**verdict.data, OPERATOR_STOP: stopped})


def _judge(state: UnitState, data: dict[str, Any]) -> CheckResult:
    name, summary = state.unit, state.summary()
    if not state.exists:
        detail = f"unit {name} is not loaded (LoadState={state.load_state or 'unknown'})"
        return CheckResult.fail(FailureType.SERVICE_CRASH, detail, definitive=True, **data)
    if state.active_state in _HEALTHY:
        return CheckResult.ok(f"{name} is {summary}", **data)
    if state.start_limit_hit:
        detail = f"{name} failed: start limit hit: run systemctl reset-failed {name} ({summary})"
        return CheckResult.fail(FailureType.SERVICE_CRASH, detail, definitive=True, **data)
    if state.failed or (state.active_state == "inactive" and state.result != "success"):
        ended = state.main_exit()
        detail = f"{name} is down: {summary}" + (f"; main process {ended}" if ended else "")
        return CheckResult.fail(FailureType.SERVICE_CRASH, detail, definitive=True, **data)
    if state.active_state == "inactive":
        detail = f"{name} was stopped cleanly (systemctl stop): left alone until it runs again"
        return replace(
            CheckResult.fail(FailureType.SERVICE_CRASH, detail, **data), operator_stop=True
        )
    return _in_transition(state, data)


def _in_transition(state: UnitState, data: dict[str, Any]) -> CheckResult:
    summary = f"{state.unit} is {state.summary()}"
    if state.sub_state == "auto-restart":
        detail = f"{summary}: it crashed and systemd restarts it (Restart=)"
        return CheckResult.fail(FailureType.SERVICE_CRASH, detail, **data)
    if state.active_state == "activating":
        return CheckResult.fail(FailureType.CONNECTION_TIMEOUT, f"{summary}: not up yet", **data)
    return CheckResult.fail(FailureType.SERVICE_CRASH, summary, **data)


def refine(result: CheckResult, state: UnitState) -> CheckResult:
    """Another check's failure, seen with what systemd says about the unit.

    A unit that is down or deliberately stopped decides the verdict; a unit
    that is up leaves the check's own verdict, marked as not stopped.
    """
    verdict = judge_unit(state)
    if verdict.definitive or verdict.operator_stop:
        return replace(verdict, detail=f"{verdict.detail}; the check saw: {result.detail}")
    return replace(result, operator_stop=False, data={**result.data, OPERATOR_STOP: False})

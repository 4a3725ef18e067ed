"""Running one step (a playbook step or a workflow step): build the action,
apply its timeout, honour dry run, and turn every outcome into a record."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from medic.config.actions import ActionOptions
from medic.core.errors import MedicError
from medic.core.vocabulary import StepOutcome
from medic.heal.actions import ACTION_TYPES
from medic.heal.actions.base import Action, ActionContext

_OWN_TIMEOUT_MARGIN_S = 2.0


@dataclass(frozen=True)
class StepRun:
    """What one step did: its record in a recovery's or a workflow run's history."""

    action: str
    description: str
    outcome: StepOutcome
    detail: str
    output: str
    started_at: float
    duration_s: float
    data: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.outcome.ok


def build_action(options: ActionOptions) -> Action[Any]:
    return ACTION_TYPES[options.action](options)


def step_timeout(action: Action[Any], default_s: float | None = None) -> float | None:
    """How long the step may run; None: no step bound (the workflow's still applies).

    An explicit step ``timeout`` wins. Otherwise ``default_s`` (a workflow passes
    its own ``timeout``), else the action's ``default_timeout_s`` (playbooks); an
    action that ends by itself (``sleep``) is not cut short by a default.
    """
    if action.manages_own_timeout:
        return action.timeout_s + _OWN_TIMEOUT_MARGIN_S
    if action.options.timeout:
        return float(action.options.timeout)
    if action.ends_by_itself:
        return None
    return default_s if default_s is not None else action.default_timeout_s


async def run_step(
    options: ActionOptions, ctx: ActionContext, *, default_timeout_s: float | None = None
) -> StepRun:
    """Run one step; ``default_timeout_s`` bounds it when it has no ``timeout``."""
    action = build_action(options)
    started, t0 = time.time(), time.monotonic()
    try:
        description = action.describe(ctx)
    except Exception as exc:  # noqa: BLE001 - a bad target is a failed step, not a crash
        return _outcome(action, str(options.action), StepOutcome.FAILED, f"{exc}", "", started, t0)
    if ctx.dry_run:
        return _outcome(
            action, description, StepOutcome.DRY_RUN, f"would {description}", "", started, t0
        )
    timeout = step_timeout(action, default_timeout_s)
    try:
        async with asyncio.timeout(timeout):
            result = await action.run(ctx)
    except TimeoutError:
        took = timeout if timeout is not None else round(time.monotonic() - t0, 1)
        return _outcome(
            action,
            description,
            StepOutcome.TIMED_OUT,
            f"timed out after {took:g}s",
            "",
            started,
            t0,
        )
    except Exception as exc:  # noqa: BLE001 - a failing action must never take the daemon down
        # medic's own errors say what happened ("Docker engine unreachable: ...");
        # anything else is named by its type.
        detail = str(exc) if isinstance(exc, MedicError) else f"{type(exc).__name__}: {exc}"
        return _outcome(action, description, StepOutcome.FAILED, detail, "", started, t0)
    outcome = StepOutcome.SUCCEEDED if result.ok else StepOutcome.FAILED
    return _outcome(
        action, description, outcome, result.detail, result.output, started, t0, result.data
    )


def _outcome(
    action: Action[Any],
    description: str,
    outcome: StepOutcome,
    detail: str,
    output: str,
    started: float,
    t0: float,
    data: dict[str, Any] | None = None,
) -> StepRun:
    return StepRun(
        action=action.yaml_name,
        description=description,
        outcome=outcome,
        detail=detail,
        output=output,
        started_at=started,
        duration_s=time.monotonic() - t0,
        data=data or {},
    )

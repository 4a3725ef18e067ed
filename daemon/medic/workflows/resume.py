"""Resuming a run: which of its steps are kept, and whether a run a crash cut
off may go on by itself.

A run goes on at its first unfinished step, with the steps that ended well
kept (``succeeded``, ``dry_run``, or failed under ``continue_on_failure``);
every other step runs again. An operator may resume any ``failed``,
``timed_out`` or ``interrupted`` run (``medic workflows resume RUN``). After
a crash the daemon resumes a cut-off run by itself only when it is safe to
start over each step that may have been running when the daemon died: the
workflow says ``resumable: true``, or each of those steps does. Which steps
may have been running: in a ``sync`` workflow the first unfinished one; in an
``async`` one every unfinished step whose dependencies had all ended.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from medic.config.actions import ActionOptions
from medic.config.models import WorkflowConfig
from medic.core.bus import EventBus
from medic.core.logging import get_logger
from medic.core.vocabulary import WorkflowOutcome
from medic.workflows.run import COMPONENT

log = get_logger(COMPONENT)

RESUMABLE_OUTCOMES = frozenset(
    {WorkflowOutcome.FAILED, WorkflowOutcome.TIMED_OUT, WorkflowOutcome.INTERRUPTED}
)
_PASSED = frozenset({"succeeded", "dry_run"})
_FAILED = frozenset({"failed", "timed_out"})


def kept_steps(config: WorkflowConfig, run: Mapping[str, Any]) -> dict[str, str]:
    """The steps of ``run`` (a run record's JSON) that stay done: name -> outcome.

    A step's latest record counts (a resumed run may have recorded it twice)."""
    latest = {str(step["name"]): str(step["outcome"]) for step in run.get("steps", ())}
    options = {step.name: step for step in config.steps}
    return {
        name: outcome
        for name, outcome in latest.items()
        if name in options and _ended_well(options[name], outcome)
    }


def _ended_well(step: ActionOptions, outcome: str) -> bool:
    return outcome in _PASSED or (outcome in _FAILED and step.continue_on_failure)


def may_continue_by_itself(config: WorkflowConfig, kept: Mapping[str, str]) -> bool:
    """Whether a run cut off by a crash may go on at the next start."""
    if config.resumable:
        return True
    again = [step for step in config.steps if step.name not in kept]
    if config.type == "sync":
        cut_off = again[:1]
    else:
        cut_off = [s for s in again if all(dep in kept for dep in s.depends_on)]
    return bool(cut_off) and all(step.resumable for step in cut_off)


def first_unfinished(config: WorkflowConfig, kept: Mapping[str, str]) -> str | None:
    """The first step (in list order) that runs again."""
    return next((str(s.name) for s in config.steps if s.name not in kept), None)


@dataclass(frozen=True)
class ResumePlan:
    workflow: str
    run_id: int
    trigger: str
    kept: dict[str, str]
    from_step: str | None
    why: str

    @property
    def note(self) -> str:
        """The run's detail while it goes on."""
        return f"{self.why} at step {self.from_step!r}"

    def tell(self, bus: EventBus) -> None:
        log.warning(
            "workflow.resumed",
            message=f"Workflow run resumed: {self.workflow}",
            workflow=self.workflow,
            run_id=self.run_id,
            from_step=self.from_step,
            kept=sorted(self.kept),
            why=self.why,
        )
        bus.publish(
            "workflow.resumed",
            workflow=self.workflow,
            run_id=self.run_id,
            from_step=self.from_step,
            kept=sorted(self.kept),
            detail=self.why,
        )


def plan_resume(config: WorkflowConfig, run: Mapping[str, Any], why: str) -> ResumePlan:
    """How ``run`` (a run record's JSON) goes on under ``config``."""
    kept = kept_steps(config, run)
    return ResumePlan(
        workflow=str(run["workflow"]),
        run_id=int(run["id"]),
        trigger=str(run["trigger"]),
        kept=kept,
        from_step=first_unfinished(config, kept),
        why=why,
    )


def continues_by_itself(config: WorkflowConfig, run: Mapping[str, Any]) -> bool:
    """Whether a run the last crash cut off goes on now; says so when it does not."""
    if may_continue_by_itself(config, kept_steps(config, run)):
        return True
    log.info(
        "workflow.not_resumed",
        message="A run cut off by the last stop stays interrupted: the steps it may have"
        " been running are not marked resumable",
        workflow=run["workflow"],
        run_id=run["id"],
    )
    return False

"""Which steps a resumed run keeps, and when a run a crash cut off may go on by
itself (``medic.workflows.resume``): pure rules, no daemon."""

from __future__ import annotations

from typing import Any

from medic.config.models import WorkflowConfig
from medic.workflows.resume import kept_steps, may_continue_by_itself, plan_resume
from medic.workflows.validation import parse_workflow


def workflow(kind: str, *steps: dict[str, Any], resumable: bool = False) -> WorkflowConfig:
    full = [{"action": "run_command", "command": ["true"], **step} for step in steps]
    return parse_workflow("w", {"type": kind, "resumable": resumable, "steps": full})


def run(*outcomes: tuple[str, str]) -> dict[str, Any]:
    steps = [{"name": name, "outcome": outcome} for name, outcome in outcomes]
    return {"id": 7, "workflow": "w", "trigger": "schedule", "steps": steps}


def test_kept_are_the_steps_that_ended_well_by_their_latest_record() -> None:
    config = workflow(
        "sync",
        {"name": "a"},
        {"name": "b", "continue_on_failure": True},
        {"name": "c"},
        {"name": "d"},
    )
    done = run(("a", "succeeded"), ("b", "failed"), ("c", "failed"), ("c", "succeeded"))
    assert kept_steps(config, done) == {"a": "succeeded", "b": "failed", "c": "succeeded"}
    again = run(("a", "succeeded"), ("b", "succeeded"), ("c", "succeeded"), ("c", "timed_out"))
    assert "c" not in kept_steps(config, again), "the latest record of a step counts"


def test_a_plan_goes_on_at_the_first_unfinished_step_with_the_runs_own_id() -> None:
    config = workflow("sync", {"name": "a"}, {"name": "b"}, {"name": "c"})
    plan = plan_resume(config, run(("a", "succeeded"), ("b", "failed")), "resumed by ops")
    assert (plan.run_id, plan.trigger, plan.from_step) == (7, "schedule", "b")
    assert plan.kept == {"a": "succeeded"}
    assert plan.note == "resumed by ops at step 'b'"


def test_sync_goes_on_by_itself_when_the_step_it_was_running_is_resumable() -> None:
    safe = workflow("sync", {"name": "a"}, {"name": "b", "resumable": True}, {"name": "c"})
    unsafe = workflow("sync", {"name": "a"}, {"name": "b"}, {"name": "c", "resumable": True})
    kept = {"a": "succeeded"}
    assert may_continue_by_itself(safe, kept)
    assert not may_continue_by_itself(unsafe, kept), "b may have been cut off half-way"
    assert may_continue_by_itself(
        workflow("sync", {"name": "a"}, {"name": "b"}, resumable=True), kept
    )


def test_async_needs_every_step_that_may_have_been_running_to_be_resumable() -> None:
    config = workflow(
        "async",
        {"name": "a"},
        {"name": "b", "depends_on": ["a"], "resumable": True},
        {"name": "c", "depends_on": ["a"]},
        {"name": "d", "depends_on": ["b", "c"]},
    )
    assert not may_continue_by_itself(config, {"a": "succeeded"}), "c may have been running"
    # With c done, only b could have been running (d waits for b).
    assert may_continue_by_itself(config, {"a": "succeeded", "c": "succeeded"})

"""What the last daemon left when it stopped (a crash, a kill, a power cut), settled
before the first check: step commands still running are ended, cut-off runs
marked interrupted, pruning caught up, recent recovery attempts counted again."""

from __future__ import annotations

from collections.abc import Callable

from medic.core.logging import get_logger
from medic.heal.engine import RecoveryEngine
from medic.store import Store

log = get_logger("ControlPlaneOrchestrator")


async def settle_last_stop(
    store: Store, engine: RecoveryEngine, *, dry_run: bool, prune: Callable[[], None]
) -> list[int]:
    """End what a crash left running, mark cut-off runs, catch up on pruning,
    count recent attempts again; the ids of the workflow runs a crash cut off
    (their resumable steps go on)."""
    ended = await store.end_left_step_commands(dry_run=dry_run)
    cut_off_runs = store.unfinished_run_ids()
    interrupted = store.mark_interrupted()
    if interrupted:
        log.warning(
            "history.marked_interrupted",
            message="Marked runs cut off by the last stop as interrupted",
            count=interrupted,
        )
    for record in ended:
        store.add_interrupted_note(
            f"ended the step command it left running: {record.command} (pid {record.pid})",
            recovery_id=record.recovery_id,
            run_id=record.run_id,
        )
    prune()  # a daemon that was down for long catches up before it writes more
    restored = engine.restore()
    if restored:
        log.info(
            "guardrails.attempts_restored",
            message="Recent recovery attempts count against the guardrails",
            count=restored,
        )
    return cut_off_runs

"""What the last daemon left when it stopped (a crash, a kill, a power cut), settled
before the first check: step commands still running are ended, cut-off runs
marked interrupted, pruning caught up, recent recovery attempts counted again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from medic.core.logging import get_logger
from medic.heal.engine import RecoveryEngine
from medic.host.subprocesses import end_left_session
from medic.store import SessionRecord, Store

log = get_logger("ControlPlaneOrchestrator")


async def settle_last_stop(
    store: Store, engine: RecoveryEngine, *, dry_run: bool, prune: Callable[[], None]
) -> list[int]:
    """End what a crash left running, mark cut-off runs, catch up on pruning,
    count recent attempts again; the ids of the workflow runs a crash cut off
    (their resumable steps go on)."""
    ended = await end_left_step_commands(store, dry_run=dry_run)
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


async def end_left_step_commands(store: Store, *, dry_run: bool) -> list[SessionRecord]:
    """End the step commands a crashed daemon left running; the records that were.

    A session counts only if its leader still runs with the recorded start
    time (pids get reused). ``process:`` services are not step commands:
    the supervisor adopts those. A dry run leaves them, and their records.
    """
    records = store.recorded_sessions()
    if not records:
        return []
    if dry_run:
        log.warning(
            "step_command.left_alone",
            message="Step commands left running by the previous daemon are left alone (dry run)",
            count=len(records),
        )
        return []
    results = await asyncio.gather(
        *(end_left_session(r.pid, r.start_time, r.kill_grace) for r in records)
    )
    ended = [record for record, was_running in zip(records, results, strict=True) if was_running]
    for record in ended:
        owner = (
            {"recovery_id": record.recovery_id}
            if record.recovery_id is not None
            else {"run_id": record.run_id}
        )
        log.warning(
            "step_command.ended",
            message="Ended a step command left running by the previous daemon",
            pid=record.pid,
            command=record.command,
            **owner,
        )
    store.forget_sessions()
    return ended

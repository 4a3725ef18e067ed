"""What a restarted daemon takes back from the history: the automatic attempts
of the last window (so a daemon that crashes and restarts cannot exceed
``max_attempts`` or the host budget) and the circuits that were open."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping

from medic.core.clock import mono_of
from medic.heal.admission import Guardrails, counts_against_guardrails
from medic.heal.circuits import Circuits, still_open
from medic.heal.recording import AuditRecord, RecoveryJournal
from medic.heal.state import HealBook
from medic.watch.state import ServiceState

_CIRCUIT_HISTORY_ROWS = 10_000
"""How far back the audit is read at start for circuits left open."""


def restore_history(
    journal: RecoveryJournal,
    book: HealBook,
    guardrails: Guardrails,
    circuits: Circuits,
    states: Mapping[str, ServiceState],
) -> int:
    """Restore attempts and open circuits; returns how many attempts count again.

    The history keeps wall-clock times; each is taken back as the monotonic
    time it was, as the wall clock reads now."""
    recent = journal.recovery_starts(time.time() - guardrails.policy.window)
    counted = [
        (start.service, mono_of(start.at))
        for start in recent
        if counts_against_guardrails(start.trigger, start.dry_run)
    ]
    for service, at in counted:
        if service in states:
            book.of(states[service]).attempts.append(at)
        guardrails.host_attempts.append(at)
    entries = journal.audit_entries("circuit.*", limit=_CIRCUIT_HISTORY_ROWS)
    for before in still_open(_circuit_words(entries)):
        if before.service in states:
            circuits.reopen(book.of(states[before.service]), before, time.monotonic())
    return len(counted)


def _circuit_words(
    entries: Iterable[AuditRecord],
) -> Iterator[tuple[str, str, float, str | None]]:
    for entry in entries:
        if entry.service is not None:
            at = mono_of(entry.at.timestamp())
            yield entry.kind, entry.service, at, entry.data.get("detail")

"""What a restarted daemon takes back from the history: the automatic attempts
of the last window (so a daemon that crashes and restarts cannot exceed
``max_attempts`` or the host budget) and the circuits that were open."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

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
    now: float,
) -> int:
    """Restore attempts and open circuits; returns how many attempts count again."""
    host_window = guardrails.policy.window
    # A service's own window may be longer than the host's.
    longest = max([host_window, *(s.spec.policy.window for s in states.values())])
    recent = journal.recovery_starts(now - longest)
    counted = [
        (start.service, start.at)
        for start in recent
        if counts_against_guardrails(start.trigger, start.dry_run)
    ]
    for service, at in counted:
        state = states.get(service)
        if state is not None and at >= now - state.spec.policy.window:
            book.of(state).attempts.append(at)
        if at >= now - host_window:
            guardrails.host_attempts.append(at)
    entries = journal.audit_entries("circuit.*", limit=_CIRCUIT_HISTORY_ROWS)
    for before in still_open(_circuit_words(entries)):
        if before.service in states:
            state = states[before.service]
            circuits.reopen(state, book.of(state), before, now)
    return sum(1 for _service, at in counted if at >= now - host_window)


def _circuit_words(
    entries: Iterable[AuditRecord],
) -> Iterator[tuple[str, str, float, str | None]]:
    for entry in entries:
        if entry.service is not None:
            yield entry.kind, entry.service, entry.at.timestamp(), entry.data.get("detail")

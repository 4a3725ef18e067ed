"""What a restarted daemon takes back from the history: the automatic attempts
of the last window (so a daemon that crashes and restarts cannot exceed
``max_attempts`` or the host budget) and the circuits that were open.

An operator's reset (``operator.reset`` in the audit trail) gave a service
its attempts back for good: attempts before it never count again. Recoveries
that never acted (rejected, expired) never counted."""

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
_RESET_ROWS = 10_000
"""How many of the latest resets are read at start."""


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
    now = time.time()
    host_window = guardrails.policy.window
    # A service's own window may be longer than the host's.
    longest = max([host_window, *(s.spec.policy.window for s in states.values())])
    resets = journal.audit_entries("operator.reset", limit=_RESET_ROWS)
    reset_at = _latest_resets(resets, now - longest)
    recent = journal.recovery_starts(now - longest)
    counted = [
        (start.service, start.at)
        for start in recent
        if counts_against_guardrails(start.trigger, start.dry_run, start.outcome)
    ]
    for service, at in counted:
        state = states.get(service)
        # A reset gives the service its attempts back; the host's budget keeps them.
        reset = reset_at.get(service, float("-inf"))
        if state is not None and at >= now - state.spec.policy.window and at > reset:
            book.of(state).attempts.append(mono_of(at))
        if at >= now - host_window:
            guardrails.host_attempts.append(mono_of(at))
    entries = journal.audit_entries("circuit.*", limit=_CIRCUIT_HISTORY_ROWS)
    for before in still_open(_circuit_words(entries)):
        if before.service in states:
            state = states[before.service]
            circuits.reopen(state, book.of(state), before, time.monotonic())
    return sum(1 for _service, at in counted if at >= now - host_window)


def _circuit_words(
    entries: Iterable[AuditRecord],
) -> Iterator[tuple[str, str, float, str | None]]:
    for entry in entries:
        if entry.service is not None:
            at = mono_of(entry.at.timestamp())
            yield entry.kind, entry.service, at, entry.data.get("detail")


def _latest_resets(latest_first: Iterable[AuditRecord], since: float) -> dict[str, float]:
    """Each service's latest reset within the window (wall-clock time)."""
    found: dict[str, float] = {}
    for entry in latest_first:
        at = entry.at.timestamp()
        if at < since:
            break
        if entry.service is not None:
            found.setdefault(entry.service, at)
    return found

"""Store: medic's history in SQLite (``STATE_DIR/medic.db``).

Owns the schema and its migrations (``db``), one module per family of tables
(``transitions``, ``recoveries``, ``workflow_runs``, ``audit``, ``sessions``,
``pauses``), what spans them (``upkeep``: crash marking, retention), a file it
cannot use (``deferred``: moved aside when corrupt, opened later when the disk
is full), the writes that wait
in memory while the database refuses them (``backlog``: disk full), the typed
records that reads return (``records``) and the lock that keeps a second
daemon off the state dir (``lock``), why a file cannot be opened
(``open_faults``). Written before anything is reported;
writes that fail wait in memory (``Store.backlog``).

``Store`` is the one object the rest of medic holds: every family on one
connection, with the method names callers have always used.

May import: ``medic.core``, ``medic.host``.
"""

from __future__ import annotations

from medic.store.audit import AuditTrail
from medic.store.backlog import HistoryHealth, HistoryObserver
from medic.store.lock import StateDirInUse, StateDirLock
from medic.store.open_faults import StateDirUnusable
from medic.store.pauses import Pauses
from medic.store.records import (
    NO_RUNS,
    AuditEntry,
    EvidenceRecord,
    HealthProbeRecord,
    RecoveryRecord,
    RecoveryStart,
    RecoveryStepRecord,
    SessionRecord,
    WorkflowCounts,
    WorkflowRunRecord,
    WorkflowStepRecord,
)
from medic.store.recoveries import Recoveries
from medic.store.sessions import Sessions, StepSessions
from medic.store.transitions import Transitions
from medic.store.upkeep import Upkeep
from medic.store.workflow_runs import WorkflowRuns


class Store(Transitions, Recoveries, WorkflowRuns, AuditTrail, Sessions, Pauses, Upkeep):
    """The history: each family of tables contributes its writes and reads, and
    all of them share one connection and its transactions (``Database``).

    ``Store.in_state_dir(state_dir)`` opens ``state_dir/medic.db``, creating and
    migrating it as needed; ``StateDirUnusable`` says why it cannot.
    """


__all__ = [
    "NO_RUNS",
    "AuditEntry",
    "EvidenceRecord",
    "HealthProbeRecord",
    "HistoryHealth",
    "HistoryObserver",
    "RecoveryRecord",
    "RecoveryStart",
    "RecoveryStepRecord",
    "SessionRecord",
    "StateDirInUse",
    "StateDirLock",
    "StateDirUnusable",
    "StepSessions",
    "Store",
    "WorkflowCounts",
    "WorkflowRunRecord",
    "WorkflowStepRecord",
]

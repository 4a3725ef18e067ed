"""The ``recoveries`` and ``recovery_steps`` tables: each recovery of a
service with the steps its playbook ran."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import asdict
from types import MappingProxyType
from typing import Any

from medic.core.clock import utc
from medic.core.records import ContainerEvidence, RecoveryStepEntry
from medic.core.vocabulary import FailureType, RecoveryOutcome, StepOutcome, Trigger
from medic.store.db import Database, StepWrite, sees_pending, span
from medic.store.records import (
    EvidenceRecord,
    HealthProbeRecord,
    RecoveryRecord,
    RecoveryStart,
    RecoveryStepRecord,
)

UNFINISHED = tuple(outcome.value for outcome in RecoveryOutcome if not outcome.finished)
"""``running`` and ``waiting_approval``: a recovery in these has no end yet."""


class Recoveries(Database):
    def start_recovery(
        self,
        service: str,
        failure_type: str | None,
        playbook: str,
        trigger: str,
        status: str = "running",
        dry_run: bool = False,
        facts: dict[str, Any] | None = None,
    ) -> int:
        """Record a recovery as started; its id (valid even while the row waits)."""
        recovery_id = self._new_id("recoveries")
        self._write(
            "recovery.start",
            (
                "INSERT INTO recoveries(id, service, failure_type, playbook, trigger, status,"
                " dry_run, started_at, facts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    recovery_id,
                    service,
                    failure_type,
                    playbook,
                    trigger,
                    status,
                    int(dry_run),
                    time.time(),
                    json.dumps(facts or {}, default=str),
                ),
            ),
        )
        return recovery_id

    def add_recovery_step(self, recovery_id: int, step: RecoveryStepEntry) -> None:
        own = ("position", "phase", "action", "description", "outcome")
        values = (step.position, step.phase, step.action, step.description, step.outcome)
        row = StepWrite(own, values, step.detail, step.output, step.started_at, step.duration_s)
        self._insert_step("recovery_steps", ("recovery_id", recovery_id), row)

    def set_recovery_evidence(self, recovery_id: int, evidence: ContainerEvidence) -> None:
        """Keep what the container showed before the recovery acted (once per recovery)."""
        self._write(
            "recovery.evidence",
            (
                "INSERT OR REPLACE INTO recovery_evidence(recovery_id, data) VALUES (?, ?)",
                (recovery_id, json.dumps(asdict(evidence))),
            ),
        )

    def set_recovery_status(self, recovery_id: int, status: str, detail: str | None = None) -> None:
        ended = None if status in UNFINISHED else time.time()
        self._write(
            "recovery.status",
            (
                "UPDATE recoveries SET status=?, ended_at=?, detail=COALESCE(?, detail) WHERE id=?",
                (status, ended, detail, recovery_id),
            ),
        )

    @sees_pending
    def recoveries(
        self, service: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[RecoveryRecord], int]:
        """A page of the history, newest first, and how many recoveries match in all."""
        where, args = ("WHERE service=?", [service]) if service else ("", [])
        total = int(
            self._db.execute(f"SELECT COUNT(*) FROM recoveries {where}", args).fetchone()[0]
        )
        rows = self._rows(
            f"SELECT * FROM recoveries {where} ORDER BY id DESC LIMIT ? OFFSET ?",
            [*args, limit, offset],
        )
        return [self._recovery(row) for row in rows], total

    @sees_pending
    def recovery(self, recovery_id: int) -> RecoveryRecord | None:
        row = self._db.execute("SELECT * FROM recoveries WHERE id=?", (recovery_id,)).fetchone()
        return self._recovery(row) if row else None

    @sees_pending
    def recovery_starts(self, since: float) -> list[RecoveryStart]:
        """Every recovery started since ``since``, oldest first."""
        rows = self._rows(
            "SELECT service, started_at, trigger, dry_run, status FROM recoveries"
            " WHERE started_at >= ? ORDER BY started_at",
            (since,),
        )
        return [
            RecoveryStart(
                str(row[0]), float(row[1]), Trigger(row[2]), bool(row[3]), RecoveryOutcome(row[4])
            )
            for row in rows
        ]

    def _recovery(self, row: sqlite3.Row) -> RecoveryRecord:
        steps = self._rows(
            "SELECT * FROM recovery_steps WHERE recovery_id=? ORDER BY id", (row["id"],)
        )
        failure_type = row["failure_type"]
        kept = self._db.execute(
            "SELECT data FROM recovery_evidence WHERE recovery_id=?", (row["id"],)
        ).fetchone()
        return RecoveryRecord(
            id=row["id"],
            service=row["service"],
            failure_type=FailureType(failure_type) if failure_type is not None else None,
            playbook=row["playbook"],
            trigger=Trigger(row["trigger"]),
            outcome=RecoveryOutcome(row["status"]),
            dry_run=bool(row["dry_run"]),
            **span(row),
            detail=row["detail"],
            facts=MappingProxyType(json.loads(row["facts"] or "{}")),
            steps=tuple(_step(step) for step in steps),
            evidence=_evidence(kept[0]) if kept else None,
        )


def _step(row: sqlite3.Row) -> RecoveryStepRecord:
    duration = row["duration"]
    return RecoveryStepRecord(
        position=row["position"],
        phase=row["phase"],
        action=row["action"],
        description=row["description"],
        outcome=StepOutcome(row["outcome"]),
        detail=row["detail"],
        output=row["output"],
        started_at=utc(row["started_at"]),
        duration_seconds=round(duration, 4) if duration is not None else None,
    )


def _evidence(text: str) -> EvidenceRecord:
    data = json.loads(text)
    return EvidenceRecord(
        container=str(data["container"]),
        gathered_at=utc(float(data["gathered_at"])),
        status=data.get("status"),
        exit_code=data.get("exit_code"),
        oom_killed=data.get("oom_killed"),
        health_status=data.get("health_status"),
        health_log=tuple(
            HealthProbeRecord(str(p["start"]), int(p["exit_code"]), str(p["output"]))
            for p in data.get("health_log") or ()
        ),
        log=str(data.get("log") or ""),
        log_lines=int(data.get("log_lines") or 0),
        notes=tuple(str(n) for n in data.get("notes") or ()),
    )

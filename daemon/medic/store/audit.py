"""The ``audit`` table: operator calls and held actions, each with its data."""

from __future__ import annotations

import json
import time
from types import MappingProxyType
from typing import Any

from medic.core.clock import utc
from medic.store.db import Database, sees_pending
from medic.store.records import AuditEntry


class AuditTrail(Database):
    def audit(self, kind: str, service: str | None = None, **data: Any) -> None:
        self._write(
            "audit",
            (
                "INSERT INTO audit(at, kind, service, data) VALUES (?, ?, ?, ?)",
                (time.time(), kind, service, json.dumps(data, default=str)),
            ),
        )

    @sees_pending
    def audit_entries(
        self, kind: str | None = None, limit: int = 100, service: str | None = None
    ) -> list[AuditEntry]:
        """Newest first; ``kind`` is exact, or a prefix when it ends in ``.*``."""
        where, args = _audit_filter(kind, service)
        rows = self._rows(f"SELECT * FROM audit {where} ORDER BY id DESC LIMIT ?", [*args, limit])
        return [
            AuditEntry(
                id=row["id"],
                at=utc(row["at"]),
                kind=row["kind"],
                service=row["service"],
                data=MappingProxyType(json.loads(row["data"] or "{}")),
            )
            for row in rows
        ]


def _audit_filter(kind: str | None, service: str | None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    if kind and kind.endswith("*"):
        prefix = kind[:-1]
        clauses.append("substr(kind, 1, ?) = ?")
        args += [len(prefix), prefix]
    elif kind:
        clauses.append("kind = ?")
        args.append(kind)
    if service:
        clauses.append("service = ?")
        args.append(service)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", args

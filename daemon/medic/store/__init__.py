"""Store: medic's history in SQLite (``STATE_DIR/medic.db``).

Owns the schema and its migrations, and the typed records that reads return
(recoveries with their steps, transitions, audit entries, workflow runs,
step sessions). Written before anything is reported; writes that fail wait in
memory.

May import: ``medic.core``, ``medic.host``.
"""

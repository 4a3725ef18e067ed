"""Fleet: one medic per host, coordinated through etcd v3 (``fleet:``).

Owns the etcd client adapter with endpoint failover (``link``, the only
module that imports ``aetcd``), what this medic knows of the fleet's keys
(``view``), its session (lease, summary, watch, reconnecting: ``session``),
the answer to the heal side's ``FleetPort`` (shared-heal lock with fencing,
disruptive slots, holds: ``gate``), the group's blast radius (``blast``) and
the part the orchestrator starts (``coordinator``) and its wiring (``wiring``). Loaded only when
``fleet:`` is configured.

May import: ``medic.core``, ``medic.config``, ``medic.host``, ``medic.watch``,
``medic.heal``.
"""

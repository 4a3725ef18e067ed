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

import os

# gRPC's fork handlers, run in every child medic forks (command checks,
# run_command steps) while its own threads are busy with the etcd session,
# crashed those children with SIGSEGV before they could exec: a healthy
# service's check failed now and then. medic never forks to use gRPC in a
# child, so it needs no fork support; this is read when gRPC starts, hence
# before anything here imports it.
os.environ["GRPC_ENABLE_FORK_SUPPORT"] = "false"

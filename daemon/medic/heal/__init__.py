"""Heal: from a failing service to a finished recovery.

Owns the heal side's state of each service (``state``), admission under the
guardrails (``admission``, a pure decision), holds and wake-ups (``holds``),
circuits and probation (``circuits``), the fresh probe of a dependent's
dependencies before it is healed (``dependencies``), approval (``approval``), the choice of
playbook (``playbooks``), running a step (``steps``) and one recovery
(``run``), services in maintenance (``maintenance``), the evidence kept before
a playbook acts on a container (``evidence``), sidecars restarted or recreated
after the container whose network they share (``sidecars``), what the heal
side records and the ports it records through
(``recording``), what a restart takes back from the history (``restore``),
the engine that ties them together and listens to the monitor (``engine``),
its errors (``errors``), the port to a fleet of medics and the admission
that asks it (``fleet_gate``), and the action plugins (``actions/``, one module per
``action:``, shared with workflow steps).

May import: ``medic.core``, ``medic.config``, ``medic.host``, ``medic.watch``.
"""

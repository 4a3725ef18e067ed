"""Workflows: the host's scheduled automation (the seed's ``register_workflow``).

Owns the workflow manager (registration, schedules, priorities, stop and
resume: ``manager``), one run's step graph (``run``), the checks a workflow
passes before it is registered (``validation``), the pacing of step
retries (``pacing``), how a cut-off or failed run goes on (``resume``) and
how a workflow reads in the API (``describe``).
Steps are the heal side's actions.

Runs are kept and counted through the ports in ``ports`` (``RunJournal``,
``WorkflowMetrics``), which the store and the metrics implement; the
orchestrator wires them in.

May import: ``medic.core``, ``medic.config``, ``medic.host``, ``medic.watch``, ``medic.heal``.
"""

"""Workflows: the host's scheduled automation (the seed's ``register_workflow``).

Owns the workflow manager (runs, schedules, priorities, resume) and the pacing
of step retries. Steps are the heal side's actions.

May import: ``medic.core``, ``medic.config``, ``medic.host``, ``medic.heal``.
"""

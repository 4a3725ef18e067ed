"""Heal: from a failing service to a finished recovery.

Owns admission under the guardrails (``admission``), circuits and probation,
approval, the choice of playbook (``playbooks``), running a step
(``steps``) and a playbook, what the heal side records, the engine that ties
them together (``engine``), and the action plugins (``actions/``, one module
per ``action:``, shared with workflow steps).

May import: ``medic.core``, ``medic.config``, ``medic.host``, ``medic.watch``.
"""

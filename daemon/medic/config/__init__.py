"""Config: ``config.yaml`` and the playbooks, parsed once into typed models.

Owns the models of every section (``models``; the base ``section``, ``api``
and the guardrails' ``policy`` apart), the plugins' option models (a check's
``type:`` and a step's ``action:`` options, so that config never imports a
plugin), loading with ``FILE:LINE: path: message`` errors, the cross-reference
checks, the workflow schedule parsing, a container's labels read as a
service (``labels``) and the secret values a config names (``secrets``).

May import: ``medic.core``.
"""

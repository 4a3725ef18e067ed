"""Config: ``config.yaml`` and the playbooks, parsed once into typed models.

Owns the models of every section (``models``; the base ``section``, ``api``,
the guardrails' ``policy`` and the Apprise targets' ``notifications`` apart),
the plugins' option models (a check's
``type:`` and a step's ``action:`` options, so that config never imports a
plugin), loading with ``FILE:LINE: path: message`` errors, what is left of a
config that broke the schema (``salvage``, so that its references are still
checked), the cross-reference checks, the workflow schedule parsing, a
container's labels read as a service (``labels``), what ``medic run`` flags
override (``overrides``), the JSON Schema of the config for editors
(``schema``) and the secret values a config names (``secrets``).

May import: ``medic.core``.
"""

"""Config: ``config.yaml`` and the playbooks, parsed once into typed models.

Owns the models of every section (``notifications``: the Apprise targets,
beside ``models``), the plugins' option models (a check's
``type:`` and a step's ``action:`` options, so that config never imports a
plugin), loading with ``FILE:LINE: path: message`` errors, the cross-reference
checks and the workflow schedule parsing.

May import: ``medic.core``.
"""

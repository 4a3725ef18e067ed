"""API: the aiohttp app operators and tools talk to.

Owns the routes and their JSON (``app``), the status page (``page`` and
``static/``), the OpenAPI document (``openapi``; its schemas in ``_schemas``,
``_service_schemas``, ``_typed_schemas`` and ``_schema_base``) and the
Alertmanager receiver (``alerts``).

May import: every stage below it and ``medic.orchestrator``.
"""

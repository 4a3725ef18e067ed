"""API: the aiohttp app operators and tools talk to.

``app`` builds the application from its route table. Each request passes the
middleware of ``errors`` (every error as JSON) and ``auth`` (bearer token,
body size), then a handler: ``routes_daemon`` (status page, metrics, health,
status, audit, reload, the OpenAPI document), ``routes_services``,
``routes_recoveries``, ``routes_workflows``, ``routes_notifications`` (a test
message through the Apprise targets) and ``events`` (server-sent
events). The handlers share ``state`` (the app's typed keys and settings) and
``inputs`` (the JSON body, query integers, the operator's name) and
``listing`` (the services as listed: watched, then disabled). Around them:
the status page (``page``, serving ``static/status.html`` and the
``status.js`` and ``status.css`` it loads), the Alertmanager receiver
(``alerts``) and the OpenAPI document (``openapi``; its catalogue of
operations in ``_operations``, its schemas in ``_schemas``,
``_service_schemas``, ``_typed_schemas`` and ``_schema_base``).

May import: every stage below it and ``medic.orchestrator``.
"""

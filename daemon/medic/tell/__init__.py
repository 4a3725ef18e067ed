"""Tell: what leaves medic without being asked (Prometheus series, webhooks).

Owns the metric families (``metrics``; the per-service ones, updated on every
check, are kept and written out by ``per_service``) and the webhook dispatcher
(``webhooks``): each listens to the event bus and never slows a check or a
recovery.

May import: ``medic.core``, ``medic.config``.
"""

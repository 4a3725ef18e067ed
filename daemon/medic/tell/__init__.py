"""Tell: what leaves medic without being asked (Prometheus series, webhooks).

Owns the metric families (``metrics``; the per-service ones, updated on every
check, are kept and written out by ``per_service``), the queues with retries
and backoff every notifier shares (``delivery``), the webhook dispatcher
(``webhooks``), the Apprise notifier (``apprise``) and the incident messages
it sends (``incidents``): each listens to the event bus and never slows a check or a
recovery.

May import: ``medic.core``, ``medic.config``.
"""

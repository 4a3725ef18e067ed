"""Tell: what leaves medic without being asked (Prometheus series, webhooks).

Owns the metric families (``metrics``) and the webhook dispatcher
(``webhooks``): each listens to the event bus and never slows a check or a
recovery.

May import: ``medic.core``, ``medic.config``.
"""

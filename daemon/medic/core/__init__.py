"""The bottom of medic: what every stage shares and nothing else.

Owns the event bus (``bus``), the fixed vocabulary (failure types, statuses,
outcomes, triggers, hold reasons: ``vocabulary``), the root ``MedicError`` and
the errors that cross stages (``errors``), log set-up (``logging``),
timestamps (``clock``), the step entries the history is handed (``records``),
the runner of ordered long-lived parts (``lifecycle``), did-you-mean
(``hints``) and masking passwords in URLs (``redact``).

May import: nothing of medic outside ``medic.core``.
"""

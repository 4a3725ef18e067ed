"""Watch: from a scheduled probe to a service's status.

Owns the periodic scheduling (``periodic``), one check run with timeout and
refinement (``runner``), per-service status and thresholds (``state``),
exception classification (``classify``), the monitor that ties them together
and tells its listeners (``monitor``), probes overtaken by news
(``stale_probes``), how status changes are logged (``transition_log``), what
Docker's container events mean (``containers``), Docker's own restart
policy (``docker_restarts``), the check plugins (``checks/``, one module
per ``type:``) and the discovery sources (``discovery/``: services read from containers' labels).

Watch knows nothing of recovery: it tells whoever listens (``MonitorListener``).

May import: ``medic.core``, ``medic.config``, ``medic.host``.
"""

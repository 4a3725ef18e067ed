"""Host adapters: the only modules that talk to the host's own machinery.

The Docker engine (``docker``, its event stream in ``docker_events``),
supervised programs (``processes``), subprocess sessions (``subprocesses``),
a container's own configuration read back for re-creation
(``container_spec``), systemd units (``systemd``) and the notify socket
(``sdnotify``), medic's own PostgreSQL pools (``postgres``), the lean client
of the common http probe (``http_probe``), ``wall_clock`` (APScheduler's
interval jobs kept on time when the wall clock jumps), and ``resources``, the
long-lived clients the checks and actions share. Heavy clients are imported
where first used.

May import: ``medic.core``, ``medic.config``.
"""

from medic.core.errors import MedicError


class HostError(MedicError):
    """Base of the host adapters' errors: Docker, systemd, processes, PostgreSQL."""

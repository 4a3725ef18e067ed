"""Supervised programs: the processes a service's ``process:`` key names.

medic starts ``process.command`` itself, detached, or adopts a process that
``process.pidfile`` names (or that an earlier medic started); it watches each
one, calls back on an unexpected exit, stops and restarts it on request, and
stops what it started at shutdown.

``supervisor`` is the ``ProcessSupervisor`` the rest of medic holds; ``watches``
starts a child and watches a running process until it exits; ``pidfiles``
reads pidfiles and keeps the record of each child medic started; ``reports``
holds what the supervisor tells: a process's info, its last exit, the outcome
of a stop or restart.
"""

from medic.host import HostError


class ProcessStartError(HostError):
    """medic cannot start the service's process (no command, or exec failed)."""

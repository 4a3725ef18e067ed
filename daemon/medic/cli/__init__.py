"""CLI: the ``medic`` command.

Owns argument parsing, ``medic validate`` and ``medic run`` (``main``; the
containers' labels that ``validate`` asks the engine for in ``discovered``), the
control commands (``commands``), the HTTP client of the daemon's API they
call (``client``), ``medic fleet`` (``fleet``), the printing of their
answers (``render``) and ``medic install-unit`` (``install``). The daemon
is imported only by ``medic run``.

May import: every stage; ``medic.daemon`` only when running.
"""

from medic.core.errors import MedicError


class CliError(MedicError):
    """Base of the ``medic`` command's own errors (client and install-unit)."""

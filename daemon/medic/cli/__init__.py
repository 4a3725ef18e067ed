"""CLI: the ``medic`` command.

Owns argument parsing and ``medic run`` (``main``), the API client behind
the control commands (``client``) and ``medic install-unit`` (``install``).
The daemon is imported only by ``medic run``.

May import: every stage; ``medic.daemon`` only when running.
"""

from medic.core.errors import MedicError


class CliError(MedicError):
    """Base of the ``medic`` command's own errors (client and install-unit)."""

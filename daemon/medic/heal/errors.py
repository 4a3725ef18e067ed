"""The heal side's errors, under one base."""

from __future__ import annotations

from medic.core.errors import MedicError


class HealError(MedicError):
    """A recovery could not be started or decided as asked."""


class RecoveryBusy(HealError):
    """A recovery for this service is already running."""


class NotWaitingForApproval(HealError):
    """The recovery exists but is not waiting for a decision."""

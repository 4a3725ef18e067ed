"""The public errors (the seed's ``from medic.errors import ...``).

They are defined in ``medic.core.errors`` beside the root ``MedicError``;
this module keeps the documented import path.
"""

from medic.core.errors import (
    ConfigFileError,
    ConfigInvalid,
    ConfigIssue,
    InvalidWorkflowError,
    MedicError,
    RecoveryNotFoundError,
    ServiceNotFoundError,
    WorkflowAlreadyRunningError,
    WorkflowNotFoundError,
    WorkflowsClosedError,
)

__all__ = [
    "ConfigFileError",
    "ConfigInvalid",
    "ConfigIssue",
    "InvalidWorkflowError",
    "MedicError",
    "RecoveryNotFoundError",
    "ServiceNotFoundError",
    "WorkflowAlreadyRunningError",
    "WorkflowNotFoundError",
    "WorkflowsClosedError",
]

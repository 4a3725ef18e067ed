"""Exceptions that cross module boundaries, including the seed's public ones."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from medic.core.hints import did_you_mean

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


class MedicError(Exception):
    """Base of medic's own errors."""


class ConfigFileError(MedicError):
    """The config file is missing, unreadable or not YAML (``medic validate`` exits 2)."""


@dataclass(frozen=True, order=True)
class ConfigIssue:
    file: str
    line: int
    path: tuple[str | int, ...]
    message: str

    @property
    def dotted_path(self) -> str:
        out = ""
        for elem in self.path:
            if isinstance(elem, int):
                out += f"[{elem}]"
            elif not _plain_key(elem):
                out += f"[{elem!r}]"  # '', ' x', 'a.b': quoted, so the path reads one way
            else:
                out += f".{elem}" if out else elem
        return out or "(top level)"

    def __str__(self) -> str:
        # One issue, one line: a key or value with a newline or a control
        # character in it is shown escaped.
        return f"{self.file}:{self.line}: {_one_line(self.dotted_path)}: {_one_line(self.message)}"


def _plain_key(key: str) -> bool:
    return bool(key) and key.strip() == key and key.isprintable() and not set(key) & set(".[]'")


def _one_line(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class ConfigInvalid(MedicError):
    """The config parsed but broke the schema; every issue is listed."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


class ServiceNotFoundError(MedicError, KeyError):
    def __init__(self, name: str, known: Iterable[str] = ()) -> None:
        super().__init__(name)
        self.name = name
        self.known = sorted(known)

    def __str__(self) -> str:
        close = did_you_mean(self.name, self.known)
        hint = f" (did you mean {close!r}?)" if close else ""
        return f"no service named {self.name!r}{hint}"


class WorkflowNotFoundError(MedicError, KeyError):
    """The seed's error for an unknown workflow id."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(workflow_id)
        self.workflow_id = workflow_id

    def __str__(self) -> str:
        return f"no workflow registered as {self.workflow_id!r}"


class WorkflowAlreadyRunningError(MedicError):
    """The seed's error for starting a workflow whose run is in progress."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(f"workflow {workflow_id!r} is already running")
        self.workflow_id = workflow_id


class InvalidWorkflowError(MedicError, ValueError):
    """A workflow definition that cannot be registered; every problem is listed."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class WorkflowsClosedError(MedicError):
    """The daemon is shutting down and starts no more workflow runs."""


class WorkflowRunNotFoundError(MedicError, KeyError):
    def __init__(self, workflow_id: str, run_id: int) -> None:
        super().__init__(run_id)
        self.workflow_id, self.run_id = workflow_id, run_id

    def __str__(self) -> str:
        return f"workflow {self.workflow_id!r} has no run {self.run_id}"


class RunNotResumableError(MedicError):
    """Only a failed or interrupted run can be resumed."""


class RecoveryNotFoundError(MedicError, KeyError):
    def __init__(self, recovery_id: int) -> None:
        super().__init__(recovery_id)
        self.recovery_id = recovery_id

    def __str__(self) -> str:
        return f"no recovery with id {self.recovery_id}"

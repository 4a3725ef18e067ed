"""Checking a workflow before it is registered: its model, its step graph and
its schedule. A workflow with problems is refused whole (``InvalidWorkflowError``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from medic.config.models import WorkflowConfig
from medic.config.refs import step_graph_issues, step_timeout_issues
from medic.config.schedules import schedule_errors
from medic.core.errors import ConfigIssue, InvalidWorkflowError


def parse_workflow(workflow_id: str, config: WorkflowConfig | Mapping[str, Any]) -> WorkflowConfig:
    """A checked ``WorkflowConfig`` from a model or a plain dict (the seed's form)."""
    if isinstance(config, WorkflowConfig):
        model = config
    else:
        try:
            model = WorkflowConfig.model_validate(dict(config))
        except ValidationError as exc:
            raise InvalidWorkflowError(
                [f"workflow {workflow_id!r}: {_pydantic_problem(e)}" for e in exc.errors()]
            ) from None
    problems = validate_workflow(workflow_id, model)
    if problems:
        raise InvalidWorkflowError(problems)
    return model


def validate_workflow(workflow_id: str, config: WorkflowConfig) -> list[str]:
    """Problems with a parsed workflow: its step graph and its schedule."""
    issues = step_graph_issues(("steps",), config.steps, _issue)
    issues += step_timeout_issues(("steps",), config.timeout, config.steps, _issue)
    problems = [f"{i.dotted_path}: {i.message}" for i in issues]
    if config.schedule is not None:
        problems += [f"schedule.{e.key}: {e}" for e in schedule_errors(config.schedule)]
    return [f"workflow {workflow_id!r}: {p}" for p in problems]


def _issue(loc: tuple[str | int, ...], message: str) -> ConfigIssue:
    return ConfigIssue(file="", line=0, path=loc, message=message)


def _pydantic_problem(error: Any) -> str:
    loc = ".".join(str(part) for part in error["loc"]) or "(top level)"
    return f"{loc}: {error['msg']}"

"""Choosing the playbook for a failure, per design.md: the service's
``recovery:`` map, else the first (alphabetically) playbook whose
``failure_types`` list the type and whose steps can act on this service, else
notify only."""

from __future__ import annotations

from collections.abc import Mapping

from medic.config.actions import ActionOptions
from medic.config.models import Playbook, ServiceSpec
from medic.core.vocabulary import FailureType

NOTIFY_ONLY = "notify-only"


def builtin_notify_only() -> Playbook:
    return Playbook.model_validate(
        {
            "name": NOTIFY_ONLY,
            "description": "Tell the operators; take no action.",
            "steps": [{"action": "notify", "event": "recovery.notify"}],
        }
    )


def step_applies(step: ActionOptions, service: ServiceSpec) -> bool:
    """Whether the service names what the step acts on (its options declare it)."""
    needed = step.needed_service_target()
    return needed is None or getattr(service, needed) is not None


def playbook_applies(playbook: Playbook, service: ServiceSpec) -> bool:
    return all(step_applies(step, service) for step in playbook.steps)


def choose_playbook(
    service: ServiceSpec, failure_type: FailureType | None, playbooks: Mapping[str, Playbook]
) -> Playbook:
    if failure_type is not None and failure_type in service.recovery:
        return playbooks[service.recovery[failure_type]]
    for name in sorted(playbooks):
        playbook = playbooks[name]
        if failure_type in playbook.failure_types and playbook_applies(playbook, service):
            return playbook
    return playbooks.get(NOTIFY_ONLY) or builtin_notify_only()

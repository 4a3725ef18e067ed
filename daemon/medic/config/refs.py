"""Checks across the config and the playbooks: names that must refer to
something, graphs that must not loop, and workflow schedules that must parse."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from medic.config.actions import ActionOptions
from medic.config.models import Config, Playbook, ScheduleConfig, ServiceConfig
from medic.config.schedules import schedule_errors
from medic.core.bus import PUBLISHED_EVENTS
from medic.core.errors import ConfigIssue
from medic.core.hints import did_you_mean
from medic.core.vocabulary import FailureType

Loc = tuple[str | int, ...]
IssueMaker = Callable[..., ConfigIssue]


def check_references(
    config: Config, playbooks: Mapping[str, Playbook], issue: IssueMaker
) -> list[ConfigIssue]:
    found: list[ConfigIssue] = []
    found += _service_references(config, playbooks, issue)
    found += _service_cycles(config, issue)
    found += _check_targets(config, issue)
    found += _webhook_events(config, playbooks, issue)
    found += _open_api(config, issue)
    found += _maintenance_windows(config, issue)
    for workflow_id, workflow in config.workflows.items():
        found += step_graph_issues(("workflows", workflow_id, "steps"), workflow.steps, issue)
        found += step_timeout_issues(
            ("workflows", workflow_id, "steps"), workflow.timeout, workflow.steps, issue
        )
        if workflow.schedule is not None:
            found += [
                issue(("workflows", workflow_id, "schedule", error.key), str(error))
                for error in schedule_errors(workflow.schedule)
            ]
    return found


def _open_api(config: Config, issue: IssueMaker) -> list[ConfigIssue]:
    """medic never listens beyond this host with nothing to check a caller against."""
    api = config.api
    if not api.enabled or api.loopback or api.has_token:
        return []
    message = (
        f"{api.host} is not a loopback address and no API token is configured:"
        " set api.token_env, api.token_file or api.tokens (or listen on 127.0.0.1)"
    )
    return [issue(("api", "listen"), message)]


def _maintenance_windows(config: Config, issue: IssueMaker) -> list[ConfigIssue]:
    """Each window's cron line and timezone parse as a workflow schedule's do,
    and its services exist."""
    found = []
    for index, window in enumerate(config.maintenance):
        schedule = ScheduleConfig(cron=window.cron, timezone=window.timezone)
        found += [
            issue(("maintenance", index, error.key), str(error))
            for error in schedule_errors(schedule)
        ]
        names = [] if window.services == "*" else window.services
        for position, name in enumerate(names):
            if name not in config.services:
                loc: Loc = ("maintenance", index, "services", position)
                found.append(issue(loc, f"unknown service {name!r}{_hint(name, config.services)}"))
    return found


def _hint(name: str, known: Iterable[str]) -> str:
    known = sorted(known)
    close = did_you_mean(name, known)
    if close:
        return f" (did you mean {close!r}?)"
    return f"; known: {', '.join(known)}" if known else ""


def _service_references(
    config: Config, playbooks: Mapping[str, Playbook], issue: IssueMaker
) -> list[ConfigIssue]:
    found = []
    for name, svc in config.services.items():
        for index, dep in enumerate(svc.depends_on):
            if dep not in config.services:
                loc: Loc = ("services", name, "depends_on", index)
                found.append(issue(loc, f"unknown service {dep!r}{_hint(dep, config.services)}"))
            elif dep == name:
                found.append(
                    issue(
                        ("services", name, "depends_on", index), "a service cannot depend on itself"
                    )
                )
        for failure_type, playbook in svc.recovery.items():
            loc = ("services", name, "recovery", failure_type.value)
            problem = _recovery_problem(playbook, svc, config, playbooks)
            if problem is not None:
                found.append(issue(loc, problem))
    return found


def _recovery_problem(
    name: str, svc: ServiceConfig, config: Config, playbooks: Mapping[str, Playbook]
) -> str | None:
    """Why a service's ``recovery:`` cannot use the playbook ``name``; None when it can."""
    playbook = playbooks.get(name)
    if playbook is None:
        files = [config.playbooks_dir / f"{name}{suffix}" for suffix in (".yaml", ".yml")]
        broken = next((file for file in files if file.is_file()), None)
        if broken is not None:
            return f"playbook {name!r} has errors of its own (listed under {broken})"
        where = f": no {name}.yaml in {config.playbooks_dir} (playbooks_dir)"
        return f"unknown playbook {name!r}{where}{_hint(name, playbooks)}"
    unmet = _unmet_step(playbook, svc)
    if unmet is None:
        return None
    index, step, needed = unmet
    return (
        f"playbook {name!r} cannot act on this service: its step {index + 1}"
        f" ({step.action}) needs the service's '{needed}:', which it does not name"
    )


def _unmet_step(playbook: Playbook, svc: ServiceConfig) -> tuple[int, ActionOptions, str] | None:
    """The first step that needs a container, unit or process the service does
    not name (the rule ``medic.heal.playbooks`` chooses by), with its index."""
    for index, step in enumerate(playbook.steps):
        needed = step.needed_service_target()
        if needed is not None and getattr(svc, needed) is None:
            return index, step, needed
    return None


def unnamed_approval_choices(
    config: Config, playbooks: Mapping[str, Playbook]
) -> dict[str, dict[str, list[str]]]:
    """Playbooks with ``approval: required`` that matching by ``failure_types``
    would choose for services whose ``recovery:`` does not name them:
    playbook -> service -> the failure types it would be chosen for."""
    found: dict[str, dict[str, list[str]]] = {}
    for name, svc in config.services.items():
        if not svc.enabled:
            continue
        for failure_type in FailureType:
            if failure_type in svc.recovery:
                continue
            chosen = next(
                (
                    playbooks[p]
                    for p in sorted(playbooks)
                    if failure_type in playbooks[p].failure_types
                    and _unmet_step(playbooks[p], svc) is None
                ),
                None,
            )
            if chosen is None or chosen.approval != "required":
                continue
            if chosen.name in svc.recovery.values():
                continue  # the service names it elsewhere: a deliberate choice
            found.setdefault(chosen.name, {}).setdefault(name, []).append(failure_type.value)
    return found


def _check_targets(config: Config, issue: IssueMaker) -> list[ConfigIssue]:
    """A check that watches the service's own container, unit or process by
    default needs the service to name one (each check's ``target_problem``)."""
    found = []
    for name, svc in config.services.items():
        problem = svc.check.target_problem(
            container=svc.container, unit=svc.unit, process=svc.process is not None
        )
        if problem is not None:
            found.append(issue(("services", name, "check"), problem))
    return found


def _webhook_events(
    config: Config, playbooks: Mapping[str, Playbook], issue: IssueMaker
) -> list[ConfigIssue]:
    """A webhook or Apprise target subscribed to an event nobody publishes would never fire."""
    targets: list[tuple[str, int, list[str]]] = [
        ("webhooks", index, hook.events) for index, hook in enumerate(config.notifications.webhooks)
    ] + [("apprise", i, entry.events) for i, entry in enumerate(config.notifications.apprise)]
    if not targets:
        return []
    steps = [s for w in config.workflows.values() for s in w.steps]
    steps += [s for p in playbooks.values() for s in (*p.steps, *p.on_failure)]
    known = set(PUBLISHED_EVENTS) | {event for s in steps for event in s.published_events()}
    found = []
    for section, index, events in targets:
        for pos, pattern in enumerate(events):
            text = _unknown_event(pattern, known)
            if text is not None:
                loc: Loc = ("notifications", section, index, "events", pos)
                found.append(issue(loc, text))
    return found


def _unknown_event(pattern: str, known: set[str]) -> str | None:
    if pattern == "*" or pattern in known:
        return None
    if pattern.endswith(".*"):
        if any(name.startswith(pattern[:-1]) for name in known):
            return None
        prefixes = sorted({f"{name.split('.')[0]}.*" for name in known if "." in name})
        close = did_you_mean(pattern, prefixes)
        return f"no event matches {pattern!r}" + (
            f" (did you mean {close!r}?)" if close else f"; known: {', '.join(prefixes)}"
        )
    close = did_you_mean(pattern, sorted(known))
    return f"unknown event {pattern!r}" + (
        f" (did you mean {close!r}?)"
        if close
        else f"; known: {', '.join(sorted(known))}, '*', a prefix like 'recovery.*'"
        " or the event: of a notify step"
    )


def _service_cycles(config: Config, issue: IssueMaker) -> list[ConfigIssue]:
    graph = {
        name: [d for d in svc.depends_on if d in config.services and d != name]
        for name, svc in config.services.items()
    }
    cycle = find_cycle(graph)
    if not cycle:
        return []
    return [issue(("services", cycle[0], "depends_on"), "dependency cycle: " + " -> ".join(cycle))]


def step_graph_issues(
    base: Loc, steps: Sequence[ActionOptions], issue: IssueMaker
) -> list[ConfigIssue]:
    """A workflow's steps: each named once, ``depends_on`` naming steps, no cycle."""
    found = []
    names: dict[str, int] = {}
    for index, step in enumerate(steps):
        if not step.name:
            found.append(issue((*base, index), "a workflow step needs a 'name'"))
        elif step.name in names:
            found.append(issue((*base, index, "name"), f"duplicate step name {step.name!r}"))
        else:
            names[step.name] = index
    for index, step in enumerate(steps):
        for dep_index, dep in enumerate(step.depends_on):
            if dep not in names:
                loc: Loc = (*base, index, "depends_on", dep_index)
                found.append(issue(loc, f"unknown step {dep!r}{_hint(dep, names)}"))
    graph = {s.name: [d for d in s.depends_on if d in names] for s in steps if s.name}
    cycle = find_cycle(graph)
    if cycle:
        found.append(
            issue((*base, names[cycle[0]], "depends_on"), "step cycle: " + " -> ".join(cycle))
        )
    return found


def step_timeout_issues(
    base: Loc, timeout: float | None, steps: Sequence[ActionOptions], issue: IssueMaker
) -> list[ConfigIssue]:
    """A step that can never finish within its workflow's ``timeout`` (a ``sleep``
    longer than it) would time every run out."""
    if not timeout:
        return []
    found = []
    for index, step in enumerate(steps):
        problem = step.workflow_timeout_problem(timeout)
        if problem is not None:
            key, message = problem
            found.append(issue((*base, index, key), message))
    return found


def find_cycle(graph: Mapping[str, Sequence[str]]) -> list[str]:
    """One cycle in ``graph`` as a closed path (first == last), or []."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []

"""A container's labels read as a service: the YAML service schema written
``medic.<dotted key>`` (and autoheal's labels, with ``docker.autoheal_labels``).

``medic.interval=5s`` is ``interval: 5s``, ``medic.check.url=...`` is
``check: {url: ...}``, ``medic.depends_on=db,cache`` is a list (every key
whose schema is a list takes commas), ``medic.recovery.service_crash=...``
and ``medic.recovery_policy.max_attempts=5`` are map keys. The result goes
through the same ``ServiceConfig`` model as the YAML; each problem names the
label it comes from.

Labels can only describe what happens to their own container: whoever can
start a container must not get a command run on the host through medic. So
``process``, ``start_command``, ``unit`` and ``container`` (set to the
container itself), the ``command``, ``process`` and ``unit`` checks, a
check's ``container``, ``dsn_env`` and ``dsn_file`` (medic's own secrets and
files), an http check's ``method`` other than GET or HEAD, and a playbook
with host actions are refused, each with its reason. Playbooks come only
from ``playbooks_dir``; a label names one.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from medic.config.checks import CHECK_OPTIONS
from medic.config.load import schema_problems
from medic.config.models import HOST_WIDE_POLICY_KEYS, Playbook, ServiceConfig
from medic.core.hints import did_you_mean

PREFIX = "medic."
ENABLE = "medic.enable"
NAME = "medic.name"
AUTOHEAL_LABEL = "autoheal"
AUTOHEAL_STOP_TIMEOUT = "autoheal.stop.timeout"
DEFAULT_CHECK = "container"
AUTOHEAL_PLAYBOOK = "restart-container"

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})

_REFUSED_KEYS = {
    "process": "a label cannot make medic start a program on the host",
    "start_command": "a label cannot make medic run a command on the host",
    "unit": "a label cannot make medic act on a systemd unit of the host",
    "container": "a labelled service is its own container; medic sets `container` itself",
    "enabled": f"use {ENABLE}",
}
_REFUSED_CHECKS = {
    "command": "a `command` check runs a command on the host; a label cannot ask for one",
    "process": "a `process` check watches the host's processes; a label cannot ask for one",
    "unit": "a `unit` check watches a unit of the host; a label cannot ask for one",
}
_REFUSED_CHECK_KEYS = {
    "container": "a label's check watches its own container",
    "dsn_env": "a label cannot read medic's environment; give `dsn`",
    "dsn_file": "a label cannot read medic's files; give `dsn`",
}
_SAFE_METHODS = ("GET", "HEAD")
_HOST_ACTIONS = frozenset({"run_command", "start_service", "restart_unit", "signal_process"})
"""Playbook steps that act on the host rather than on the service's container."""


@dataclass(frozen=True)
class LabelProblem:
    """One bad label: its key and why."""

    label: str
    message: str


def is_true(value: str | None) -> bool:
    return value is not None and value.strip().lower() in _TRUE


def is_false(value: str | None) -> bool:
    return value is not None and value.strip().lower() in _FALSE


def service_from_labels(
    labels: Mapping[str, str],
    *,
    container: str,
    playbooks: Mapping[str, Playbook],
    autoheal: bool = False,
) -> ServiceConfig | list[LabelProblem]:
    """The service ``labels`` describe for ``container``, or every problem found.

    ``autoheal``: the container was chosen by autoheal's label, whose meaning
    (the HEALTHCHECK, restart when unhealthy) goes under its ``medic.*`` labels.
    """
    origins: dict[tuple[str, ...], str] = {}
    data: dict[str, Any] = {}
    problems: list[LabelProblem] = []
    if autoheal:
        _put_autoheal(labels, playbooks, data, origins)
    for label, value in sorted(labels.items()):
        if not label.startswith(PREFIX) or label in (ENABLE, NAME):
            continue
        path = tuple(label[len(PREFIX) :].split("."))
        if "" in path:
            problems.append(LabelProblem(label, "an empty key segment"))
        elif problem := _put(data, path, value.strip()):
            problems.append(LabelProblem(label, problem))
        else:
            origins[path] = label
    check = data.setdefault("check", {})
    if not isinstance(check, dict):
        problems.append(LabelProblem(f"{PREFIX}check", "use medic.check.type and its options"))
        return problems
    check.setdefault("type", DEFAULT_CHECK)
    problems += _refused(data, origins, playbooks)
    if problems:
        return problems
    _split_lists(data, origins)
    data["container"] = container
    try:
        return ServiceConfig.model_validate(data)
    except ValidationError as exc:
        return [
            LabelProblem(_label_of(path, origins), message)
            for path, message in schema_problems(exc, data, ServiceConfig)
        ]


def _put_autoheal(
    labels: Mapping[str, str],
    playbooks: Mapping[str, Playbook],
    data: dict[str, Any],
    origins: dict[tuple[str, ...], str],
) -> None:
    # Docker has debounced an `unhealthy` already (its HEALTHCHECK retries):
    # the first one seen is acted on, as autoheal does.
    data["failure_threshold"] = "1"
    origins[("failure_threshold",)] = AUTOHEAL_LABEL
    if AUTOHEAL_PLAYBOOK in playbooks:
        data["recovery"] = {"unhealthy_response": AUTOHEAL_PLAYBOOK}
        origins[("recovery", "unhealthy_response")] = AUTOHEAL_LABEL
    timeout = labels.get(AUTOHEAL_STOP_TIMEOUT)
    if timeout is not None:
        data["stop_timeout"] = timeout.strip()
        origins[("stop_timeout",)] = AUTOHEAL_STOP_TIMEOUT


def _put(data: dict[str, Any], path: tuple[str, ...], value: str) -> str | None:
    """Set ``value`` at ``path``; a reason when a key is both a value and a section."""
    node = data
    for key in path[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            return f"{key!r} is given a value and keys below it"
        node = child
    if isinstance(node.get(path[-1]), dict) and node[path[-1]]:
        return f"{path[-1]!r} is given a value and keys below it"
    node[path[-1]] = value
    return None


def _refused(
    data: dict[str, Any], origins: Mapping[tuple[str, ...], str], playbooks: Mapping[str, Playbook]
) -> list[LabelProblem]:
    found = [
        LabelProblem(_label_of((key,), origins), why)
        for key, why in _REFUSED_KEYS.items()
        if key in data
    ]
    check = data["check"]
    check_type = str(check.get("type", ""))
    if check_type in _REFUSED_CHECKS:
        found.append(LabelProblem(f"{PREFIX}check.type", _REFUSED_CHECKS[check_type]))
    found += [
        LabelProblem(_label_of(("check", key), origins), why)
        for key, why in _REFUSED_CHECK_KEYS.items()
        if key in check
    ]
    method = str(check.get("method", "GET")).upper()
    if method not in _SAFE_METHODS:
        # A POST to some local service without auth would act, not probe.
        why = f"a label's http check only reads ({', '.join(_SAFE_METHODS)}), not {method}"
        found.append(LabelProblem(_label_of(("check", "method"), origins), why))
    policy = data.get("recovery_policy")
    found += [
        LabelProblem(_label_of(("recovery_policy", key), origins), f"{key} is host-wide")
        for key in HOST_WIDE_POLICY_KEYS
        if isinstance(policy, dict) and key in policy
    ]
    recovery = data.get("recovery")
    for failure_type, name in recovery.items() if isinstance(recovery, dict) else ():
        problem = _playbook_problem(str(name), playbooks)
        if problem is not None:
            found.append(LabelProblem(_label_of(("recovery", failure_type), origins), problem))
    return found


def _playbook_problem(name: str, playbooks: Mapping[str, Playbook]) -> str | None:
    playbook = playbooks.get(name)
    if playbook is None:
        close = did_you_mean(name, sorted(playbooks))
        hint = f" (did you mean {close!r}?)" if close else ""
        return f"unknown playbook {name!r}{hint}; playbooks come only from playbooks_dir"
    host = _host_actions(playbook)
    if host:
        return (
            f"playbook {name!r} acts on the host ({', '.join(host)});"
            " a label can only choose playbooks that act on its container"
        )
    return None


def _host_actions(playbook: Playbook) -> list[str]:
    steps = [*playbook.steps, *playbook.on_failure]
    return sorted({step.action for step in steps if step.action in _HOST_ACTIONS})


def _split_lists(data: dict[str, Any], origins: Mapping[tuple[str, ...], str]) -> None:
    """Comma-separated values for every key whose schema is a list."""
    for path in origins:
        model = _check_model(data) if path[0] == "check" else ServiceConfig
        keys = path[1:] if path[0] == "check" else path
        if model is not None and _is_list(model, keys):
            parent = data
            for key in path[:-1]:
                parent = parent[key]
            value = parent[path[-1]]
            if isinstance(value, str):
                parent[path[-1]] = [item.strip() for item in value.split(",") if item.strip()]


def _check_model(data: dict[str, Any]) -> type[BaseModel] | None:
    check_type = data["check"].get("type")
    for model in CHECK_OPTIONS:
        if check_type in get_args(model.model_fields["type"].annotation):
            return model
    return None


def _is_list(model: type[BaseModel], keys: tuple[str, ...]) -> bool:
    tp: Any = model
    for key in keys:
        tp = _unwrap(tp)
        if not (isinstance(tp, type) and issubclass(tp, BaseModel)):
            return False
        field = tp.model_fields.get(key)
        if field is None:
            return False
        tp = field.annotation
    return get_origin(_unwrap(tp)) is list


def _unwrap(tp: Any) -> Any:
    """``X | None`` -> ``X``."""
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _label_of(path: tuple[str | int, ...], origins: Mapping[tuple[str, ...], str]) -> str:
    """The label a problem at ``path`` (in the data) comes from."""
    keys = tuple(str(p) for p in path if not isinstance(p, int))
    while keys:
        if keys in origins:
            return origins[keys]
        keys = keys[:-1]
    return PREFIX + ".".join(str(p) for p in path if not isinstance(p, int))

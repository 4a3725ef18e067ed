"""What is left of a config that broke the schema, so that one run of
``medic validate`` can still check its references.

A key that broke the schema goes (a broken ``check`` becomes a stand-in, a
broken ``container``/``unit``/``process`` a placeholder, a broken workflow step
a no-op that keeps its ``name`` and ``depends_on``); the rest of the entry
stays, so its ``depends_on``, ``recovery:`` and step references are checked
like those of any other entry. Paths are YAML paths (``data_path``), not
pydantic's locations.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

Path = tuple[str | int, ...]

DISCRIMINATORS = ("type", "action")
_ENTRY_SECTIONS = ("services", "workflows")
_STAND_INS: dict[str, Any] = {
    "check": {"type": "tcp", "port": 1},
    "container": "(broken)",
    "unit": "(broken)",
    "process": {"pidfile": "/(broken)"},
}
"""What a broken key of a service becomes: present, so that what depends on it
(a playbook's need of a container) is not reported as missing too."""


def data_path(loc: tuple[Any, ...], data: Any) -> Path:
    """The loc without pydantic's union tags and key markers: a path in the YAML."""
    path: list[str | int] = []
    current = data
    for elem in loc:
        if elem == "[key]":
            continue
        if isinstance(current, dict) and elem not in current and _is_tag(current, elem):
            continue
        if isinstance(elem, str) and not isinstance(current, dict):
            continue  # a smart union's member, e.g. 'list[str]' or 'int': not a YAML key
        path.append(elem)
        if isinstance(current, dict):
            current = current.get(elem)
        elif isinstance(current, list) and isinstance(elem, int) and elem < len(current):
            current = current[elem]
        else:
            current = None
    return tuple(path)


def _is_tag(mapping: dict[Any, Any], elem: Any) -> bool:
    return any(mapping.get(d) == elem for d in DISCRIMINATORS)


def error_paths(exc: ValidationError, data: Any) -> list[Path]:
    return [data_path(tuple(error["loc"]), data) for error in exc.errors()]


def salvaged(data: Any, paths: list[Path]) -> dict[str, Any] | None:
    """``data`` without the parts at ``paths``; None when nothing meaningful is
    left to check (the document or ``playbooks_dir`` itself is broken)."""
    if not isinstance(data, dict):
        return None
    out = dict(data)
    for section in _ENTRY_SECTIONS:
        if isinstance(out.get(section), dict):
            out[section] = dict(out[section])
    for path in paths:
        if not path or path[0] == "playbooks_dir":
            return None
        head = str(path[0])
        if head in _ENTRY_SECTIONS and isinstance(out.get(head), dict) and len(path) >= 2:
            _salvage_entry(out[head], head, path[1], path[2:])
        else:
            out.pop(head, None)
    return out


def _salvage_entry(entries: dict[Any, Any], section: str, name: Any, rest: Path) -> None:
    entry = entries.get(name)
    if not isinstance(entry, dict) or not rest:
        if section == "services":
            entries[name] = {"check": _STAND_INS["check"]}
        else:
            entries.pop(name, None)
        return
    entry = dict(entry)
    key = str(rest[0])
    steps = entry.get("steps")
    if key == "steps" and len(rest) >= 2 and isinstance(rest[1], int) and isinstance(steps, list):
        steps = list(steps)
        if rest[1] < len(steps):
            steps[rest[1]] = _stand_in_step(steps[rest[1]])
        entry["steps"] = steps
    elif section == "services" and key in _STAND_INS:
        entry[key] = _STAND_INS[key]
    else:
        entry.pop(key, None)
    entries[name] = entry


def _stand_in_step(step: Any) -> dict[str, Any]:
    """A no-op step with the broken step's ``name`` and ``depends_on``, so that
    the steps around it still resolve their references."""
    stand_in: dict[str, Any] = {"action": "sleep", "duration": 0}
    if not isinstance(step, dict):
        return stand_in
    if isinstance(step.get("name"), str):
        stand_in["name"] = step["name"]
    depends = step.get("depends_on")
    if isinstance(depends, list) and all(isinstance(d, str) for d in depends):
        stand_in["depends_on"] = depends
    return stand_in


def overlaps(path: Path, broken: list[Path]) -> bool:
    """Whether ``path`` is inside, or holds, a part that broke the schema."""
    return any(path[: len(b)] == b or b[: len(path)] == path for b in broken)

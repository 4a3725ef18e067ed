"""The JSON Schema of ``config.yaml``, generated from the models (``medic schema``).

Editors that speak JSON Schema (VS Code's YAML extension, any editor with
yaml-language-server) complete and check keys with it; the shipped
``control-plane/config.schema.json`` is this output, kept in sync by a test.
Durations are numbers of seconds or strings like ``30s``; a check's ``type``
and a step's ``action`` pick one member of a ``oneOf``.
"""

from __future__ import annotations

import json
from typing import Any

from medic.config.models import Config

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_BOUNDS = {"gt": "exclusiveMinimum", "ge": "minimum", "lt": "exclusiveMaximum", "le": "maximum"}
"""pydantic's names for a bound it could not place inside a custom schema (a
``Duration`` with ``gt=0``), and their JSON Schema names."""


def config_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``config.yaml``."""
    schema = Config.model_json_schema(mode="validation")
    schema = _placed_bounds(schema)
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "medic config.yaml",
        "description": "medic's config: run `medic validate` for the checks a schema cannot"
        " make (references between services, playbooks and events).",
        **{key: value for key, value in schema.items() if key != "title"},
    }


def config_schema_text() -> str:
    """``config_schema()`` as the text ``medic schema`` prints and the file holds."""
    return json.dumps(config_schema(), indent=2, sort_keys=False) + "\n"


def _placed_bounds(node: Any) -> Any:
    """The schema with each stray ``gt``/``ge``/``lt``/``le`` moved onto the
    number members of the ``anyOf`` beside it, as standard keywords."""
    if isinstance(node, list):
        return [_placed_bounds(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _placed_bounds(value) for key, value in node.items() if key not in _BOUNDS}
    bounds = {_BOUNDS[key]: value for key, value in node.items() if key in _BOUNDS}
    if bounds:
        out["anyOf"] = [_bounded(member, bounds) for member in out.get("anyOf", [])]
    return out


def _bounded(member: Any, bounds: dict[str, Any]) -> Any:
    if isinstance(member, dict) and member.get("type") in ("number", "integer"):
        return {**member, **bounds}
    if isinstance(member, dict) and "anyOf" in member:
        return {**member, "anyOf": [_bounded(m, bounds) for m in member["anyOf"]]}
    return member

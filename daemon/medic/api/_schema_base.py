"""The building blocks of the hand-written schemas: references, nullables,
objects, the common value types and the examples' times."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

Schema = dict[str, Any]

T0 = datetime(2026, 1, 6, 7, 27, 0, 120000, tzinfo=UTC)
T1 = datetime(2026, 1, 6, 7, 27, 1, 950000, tzinfo=UTC)
T2 = datetime(2026, 1, 6, 7, 37, tzinfo=UTC)
T0_ISO, T1_ISO, T2_ISO = T0.isoformat(), T1.isoformat(), T2.isoformat()


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    """``schema`` or JSON null (3.1 style: no ``nullable`` keyword)."""
    return {"anyOf": [schema, {"type": "null"}]}


def obj(props: dict[str, Schema], *, optional: tuple[str, ...] = ()) -> Schema:
    """An object with ``props``, each required unless ``optional``."""
    required = [name for name in props if name not in optional]
    return {"type": "object", "properties": props, "required": required}


def properties(schema: Schema, *names: str) -> Schema:
    """The named properties of an object schema (all of them without names)."""
    props: Schema = schema["properties"]
    return {name: props[name] for name in names or props}


STR: Schema = {"type": "string"}
BOOL: Schema = {"type": "boolean"}
INT: Schema = {"type": "integer", "minimum": 0}
SECONDS: Schema = {"type": "number", "minimum": 0}
TIME: Schema = {"type": "string", "format": "date-time"}
OPT_TIME = nullable(TIME)
OPT_STR = nullable(STR)
NAMES: Schema = {"type": "array", "items": STR}

"""Validate JSON against the schemas of medic's OpenAPI document.

The document's schemas are JSON Schema 2020-12 (OpenAPI 3.1) whose ``$ref``s
point into ``#/components``; each check wraps the schema in a root that
carries the document's components, so those pointers resolve.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

_FORMATS = FormatChecker()


def schema_errors(document: dict[str, Any], schema: dict[str, Any], instance: Any) -> list[str]:
    """Every way ``instance`` breaks ``schema``, as readable lines (empty: it validates)."""
    root = {"components": document.get("components", {}), "allOf": [schema]}
    validator = Draft202012Validator(root, format_checker=_FORMATS)
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
        for error in validator.iter_errors(instance)
    ]


def response_schema(
    document: dict[str, Any], method: str, path: str, status: int
) -> dict[str, Any]:
    """The JSON schema documented for ``method path`` answering ``status``."""
    operation = document["paths"][path][method.lower()]
    response = operation["responses"][str(status)]
    schema: dict[str, Any] = response["content"]["application/json"]["schema"]
    return schema


def examples(node: Any, where: str = "#") -> Iterator[tuple[str, dict[str, Any], Any]]:
    """(location, schema, example) for every example in the document.

    Examples sit beside a ``schema`` (media types, parameters) or inside a
    schema itself (``example`` next to its keywords).
    """
    if isinstance(node, dict):
        if "example" in node and "schema" in node:
            yield f"{where}/example", node["schema"], node["example"]
        elif "example" in node and _is_schema(node):
            schema = {k: v for k, v in node.items() if k != "example"}
            yield f"{where}/example", schema, node["example"]
        for key, value in node.items():
            if key != "example":
                yield from examples(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from examples(value, f"{where}/{index}")


def _is_schema(node: dict[str, Any]) -> bool:
    return any(key in node for key in ("type", "enum", "const", "anyOf", "allOf", "$ref"))

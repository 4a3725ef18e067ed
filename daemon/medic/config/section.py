"""The base of every config section: unknown keys are errors, values are frozen.

A field's description (what ``medic schema`` prints) is the docstring under it.
pydantic's ``use_attribute_docstrings`` finds those by walking the frames and
tokenizing each class's source at class creation: 45-50 ms of every start-up
on this config (issue 15). Sections read them here instead, from the class's
own lines parsed once, the same way (a string right after an annotated name),
and build their validators on first use (``defer_build``), when the
descriptions are in place.
"""

from __future__ import annotations

import ast
import inspect
import linecache
import sys
from typing import Any

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        docs = attribute_docstrings(cls)
        for name, field in cls.__pydantic_fields__.items():
            if field.description is None and name in docs:
                field.description = docs[name]


def attribute_docstrings(cls: type) -> dict[str, str]:
    """Each attribute of ``cls``'s own body with a string right below it, and
    that string as ``inspect.cleandoc`` leaves it (as pydantic reads them)."""
    node = _class_node(cls)
    docs: dict[str, str] = {}
    previous: ast.stmt | None = None
    for stmt in node.body if node is not None else ():
        if (
            isinstance(previous, ast.AnnAssign)
            and isinstance(previous.target, ast.Name)
            and isinstance(stmt, ast.Expr)
            and isinstance(stmt.value, ast.Constant)
            and isinstance(stmt.value.value, str)
        ):
            docs[previous.target.id] = inspect.cleandoc(stmt.value.value)
        previous = stmt
    return docs


def _class_node(cls: type) -> ast.ClassDef | None:
    """The top-level ``class`` statement of ``cls`` in its module's source: its
    lines up to the next line that starts at column 0, parsed alone."""
    file = getattr(sys.modules.get(cls.__module__), "__file__", None)
    lines = linecache.getlines(file) if file else []
    head = f"class {cls.__name__}"
    starts = [i for i, line in enumerate(lines) if line.startswith((head + "(", head + ":"))]
    if len(starts) != 1:
        return None
    end = starts[0] + 1
    while end < len(lines) and not (lines[end][:1].strip() and lines[end][0] != "#"):
        end += 1
    try:
        tree = ast.parse("".join(lines[starts[0] : end]))
    except SyntaxError:  # a string in the body with a line at column 0
        tree = ast.parse("".join(lines))
    found = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls.__name__]
    return found[0] if found else None

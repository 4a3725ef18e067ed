"""YAML loading that remembers where each value came from, so every config
error can name its file and line."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from medic.core.errors import MedicError

Path_ = tuple[str | int, ...]


class YamlSyntaxError(MedicError):
    """The text is not YAML; ``line`` is 1-based when known."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


@dataclass
class SourceMap:
    """Line numbers (1-based) of every key and value in one YAML document."""

    filename: str
    value_lines: dict[Path_, int] = field(default_factory=dict)
    key_lines: dict[Path_, int] = field(default_factory=dict)
    duplicates: list[tuple[Path_, int]] = field(default_factory=list)

    def line_of(self, path: Path_, *, key: bool = False) -> int:
        """The line of ``path``, or of its nearest ancestor that is known."""
        lines = self.key_lines if key else self.value_lines
        for end in range(len(path), -1, -1):
            prefix = path[:end]
            if prefix in lines:
                return lines[prefix]
            if prefix in self.value_lines:
                return self.value_lines[prefix]
        return 1


def load(text: str, filename: str) -> tuple[Any, SourceMap]:
    """Parse one YAML document and map every path in it to its line."""
    try:
        # The reader refuses control characters already here, before parsing.
        loader = yaml.SafeLoader(text)
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise YamlSyntaxError(_describe(exc), line) from exc
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        message = f"character {exc.character:#06x} is not allowed in YAML"
        raise YamlSyntaxError(message, line) from exc
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(str(exc), None) from exc
    source = SourceMap(filename)
    try:
        if node is not None:
            _index(node, (), source, loader)
    finally:
        loader.dispose()
    return data, source


def _describe(exc: yaml.MarkedYAMLError) -> str:
    parts = [p for p in (exc.context, exc.problem) if p]
    return "; ".join(parts) or "invalid YAML"


def _index(node: yaml.Node, path: Path_, source: SourceMap, loader: yaml.SafeLoader) -> None:
    source.value_lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = _key_of(key_node, loader)
            child = (*path, key)
            if key in seen:
                source.duplicates.append((child, key_node.start_mark.line + 1))
            seen.add(key)
            source.key_lines[child] = key_node.start_mark.line + 1
            _index(value_node, child, source, loader)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index(item, (*path, index), source, loader)


def _key_of(node: yaml.Node, loader: yaml.SafeLoader) -> str | int:
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_object(node)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        return str(value)
    return str(node.start_mark)

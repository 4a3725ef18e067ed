"""The secret values a config names: what its ``*_env`` keys' variables hold,
what its ``*_file`` keys' files hold, and the passwords of the URLs and DSNs
in it (and in those values). ``medic.core.redact.SecretValues`` masks them by
value wherever they turn up: a command's output, a request body, a detail."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from medic.core.redact import url_passwords

_MAX_FILE_BYTES = 64 << 10


def secret_values(config: Any, env: Mapping[str, str], base: Path) -> set[str]:
    """Every secret value in ``config`` (a model dumped as JSON-like data);
    relative ``*_file`` paths are read from ``base``."""
    found: set[str] = set()
    for key, value in _leaves(config):
        if key.endswith("_env") and value in env:
            found.add(env[value])
        elif key.endswith("_file"):
            text = _read(base / value)
            if text is not None:
                found.add(text)
        found.update(url_passwords(value))
    found.update(p for v in list(found) for p in url_passwords(v))
    return {v.strip() for v in found if v.strip()}


def _leaves(data: Any, key: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _leaves(v, str(k))
    elif isinstance(data, list | tuple):
        for item in data:
            yield from _leaves(item, key)
    elif isinstance(data, str):
        yield key, data


def _read(path: Path) -> str | None:
    try:
        with path.open("rb") as f:
            return f.read(_MAX_FILE_BYTES).decode("utf-8", "replace").strip()
    except OSError:
        return None

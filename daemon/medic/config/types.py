"""Value types of the config models: durations, paths relative to the config
file, argv lists and regular expressions, each validated where it is read."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, ValidationInfo, WithJsonSchema

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string like ``500ms``, ``30s``, ``5m``, ``1h``."""
    if isinstance(value, bool):
        raise ValueError("a duration must be a number of seconds or a string like '30s'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError(
            f"invalid duration {value!r}: use a number of seconds or a string "
            "like '500ms', '30s', '5m', '1h'"
        )
    if not math.isfinite(seconds):
        raise ValueError(f"a duration must be a finite number of seconds (got {value!r})")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative: {value!r}")
    return seconds


DURATION_JSON_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": _DURATION.pattern},
    ],
    "description": "seconds, or a string like 500ms, 30s, 5m, 1h, 1d",
}
"""What ``medic schema`` says a duration is: a number of seconds or a string."""

Duration = Annotated[float, BeforeValidator(parse_duration), WithJsonSchema(DURATION_JSON_SCHEMA)]
"""A duration in seconds, accepting the config's human forms."""


def _relative_to_config(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    value = value.expanduser()
    if base is not None and not value.is_absolute():
        return (Path(base) / value).resolve()
    return value


RelPath = Annotated[Path, AfterValidator(_relative_to_config)]
"""A path; relative ones are taken relative to the config file's folder."""


def _argument(value: Any) -> Any:
    # YAML reads `[pg_ctlcluster, 15, main, start]` with 15 as a number; an
    # argv holds strings, so plain numbers are taken as written.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


Argv = list[Annotated[str, BeforeValidator(_argument)]]
"""A program and its arguments; numbers in the list are taken as strings."""


def _compiles(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


Regex = Annotated[str, AfterValidator(_compiles)]
"""A regular expression, checked when the config is loaded."""

"""Passwords out of what medic shows: a URL or DSN with its password replaced
by ``***`` (``postgresql://medic:***@db/app``), for step descriptions, details
and anything else that names where medic connects; and a config section as
the API shows it, with header and environment values masked too; and, by
value, every secret medic resolved (``SecretValues``: tokens, DSN passwords,
webhook secrets), wherever it turns up (a command's output, a check's detail)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

MASK = "***"

# It starts at the literal "://" (the scheme is one character looked behind):
# the scan then jumps from one "://" to the next, fast on a large answer.
_USERINFO = re.compile(r"(?<=[A-Za-z0-9+.-])(?P<head>://[^/\s:@]*:)[^@\s/]*@")


def redact_urls(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` in it masked."""
    if "://" not in text:
        return text  # the common case, 10x faster than the scan (a 5 MB /metrics)
    return _USERINFO.sub(lambda m: f"{m.group('head')}{MASK}@", text)


MASKED_MAPPINGS = frozenset({"headers", "env"})
"""Keys whose mapping's values are masked whole: an ``Authorization`` header,
a ``PGPASSWORD`` in a step's environment."""


def redact_config(data: Any, key: str | None = None) -> Any:
    """A JSON-like config value with URL passwords, header and env values masked."""
    if isinstance(data, dict):
        if key in MASKED_MAPPINGS:
            return {k: MASK for k in data}
        return {k: redact_config(v, str(k)) for k, v in data.items()}
    if isinstance(data, list):
        return [redact_config(item) for item in data]
    if isinstance(data, str):
        return redact_urls(data)
    return data


MIN_SECRET_CHARS = 6
"""Shorter values are not masked by value: masking ``admin`` everywhere would
garble more than it hides."""


class SecretValues:
    """The secret values of the running config, masked by value in the log,
    API answers and events. One object, filled at each config load."""

    def __init__(self) -> None:
        self._values: tuple[str, ...] = ()

    def replace(self, values: Iterable[str]) -> None:
        """Mask these from now on (the config's secrets as just resolved)."""
        kept: set[str] = set()
        for value in values:
            value = value.strip()
            if len(value) >= MIN_SECRET_CHARS:
                kept.add(value)
                kept.add(json.dumps(value)[1:-1])  # as it appears inside JSON text
        self._values = tuple(sorted(kept, key=len, reverse=True))  # longest first

    def redact(self, text: str) -> str:
        """``text`` with URL passwords and every known secret value masked."""
        text = redact_urls(text)
        for value in self._values:
            if value in text:
                text = text.replace(value, MASK)
        return text


def url_passwords(text: str) -> list[str]:
    """The passwords of the ``scheme://user:password@`` URLs in ``text``."""
    return [m.group("password") for m in _PASSWORD.finditer(text)]


_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:(?P<password>[^@\s/]+)@")


__all__ = [
    "MASK",
    "MASKED_MAPPINGS",
    "MIN_SECRET_CHARS",
    "SecretValues",
    "redact_config",
    "redact_urls",
    "url_passwords",
]

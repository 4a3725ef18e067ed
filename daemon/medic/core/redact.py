"""Passwords out of what medic shows: a URL or DSN with its password replaced
by ``***`` (``postgresql://medic:***@db/app``), for step descriptions, details
and anything else that names where medic connects; and a config section as
the API shows it, with header and environment values masked too."""

from __future__ import annotations

import re
from typing import Any

MASK = "***"

_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)[^@\s/]*@")


def redact_urls(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` in it masked."""
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


__all__ = ["MASK", "MASKED_MAPPINGS", "redact_config", "redact_urls"]

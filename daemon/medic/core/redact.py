"""Passwords out of what medic shows: a URL or DSN with its password replaced
by ``***`` (``postgresql://medic:***@db/app``), for step descriptions, details
and anything else that names where medic connects."""

from __future__ import annotations

import re

MASK = "***"

_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)[^@\s/]*@")


def redact_urls(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` in it masked."""
    return _USERINFO.sub(lambda m: f"{m.group('head')}{MASK}@", text)


__all__ = ["MASK", "redact_urls"]

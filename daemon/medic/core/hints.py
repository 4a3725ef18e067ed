"""Suggesting the name a typo meant."""

from __future__ import annotations

import difflib


def did_you_mean(name: str, known: list[str]) -> str | None:
    """The known name a typo most likely meant, if any is close enough."""
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        return close[0]
    # Catches a typo of a key's tail, e.g. 'intervall' for 'health_check_interval'.
    best, best_size = None, 0
    for candidate in known:
        match = difflib.SequenceMatcher(None, name, candidate).find_longest_match()
        if match.size > best_size:
            best, best_size = candidate, match.size
    return best if best_size >= max(5, int(0.75 * len(name))) else None

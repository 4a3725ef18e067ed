"""The status page at ``GET /``: one self-contained HTML file (no external
assets) that reads the JSON API and refreshes itself from the SSE stream."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any


@cache
def _template() -> str:
    return files("medic.api").joinpath("static/status.html").read_text(encoding="utf-8")


def render_status_page(_orchestrator: Any) -> str:
    return _template()

"""Real processes started by a test (see tests/processes.py for the helpers).

Fixtures
    spawn  function  Spawner: starts processes, kills whatever is left at the end
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.processes import Spawner


@pytest.fixture
def spawn() -> Iterator[Spawner]:
    """Starts real processes for a test and kills whatever is left at the end."""
    with Spawner() as spawner:
        yield spawner

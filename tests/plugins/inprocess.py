"""medic in the test's own event loop.

Fixtures
    resources  function  Resources: the daemon's shared clients, closed after
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from medic.host.resources import Resources


@pytest.fixture
async def resources(tmp_path: Path) -> AsyncIterator[Resources]:
    """The daemon's shared clients (HTTP session, Docker, pools, processes), closed after."""
    res = Resources(state_dir=tmp_path / "state")
    yield res
    await res.close()

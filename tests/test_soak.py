"""The soak, 3 minutes of it: 10 containers, 3 ``process:`` services and a
PostgreSQL cluster of its own under random faults (``bench/soak.py``; the
30-minute run and its figures are in docs/reliability.md).

Every fault is checked one by one against Docker's event stream and medic's
history: healed or correctly held, no restart of a healthy service, no history
row lost; medic's RSS, open fds and asyncio tasks stay flat after warm-up.
The seed is printed; ``MEDIC_SOAK_SEED`` replays one.
"""

from __future__ import annotations

import importlib
import os
import random
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO_ROOT

SOAK_MINUTES = 3.0


@pytest.fixture(scope="module")
def soak_module() -> Any:
    sys.path.insert(0, str(REPO_ROOT / "bench"))
    try:
        return importlib.import_module("soak")
    finally:
        sys.path.remove(str(REPO_ROOT / "bench"))


@pytest.mark.docker
@pytest.mark.postgres
@pytest.mark.timeout(480)  # 3 min of faults, set-up, quiet samples, a failing fault's 2 min
def test_three_minutes_of_random_faults(
    soak_module: Any, tmp_path: Path, docker_client: Any, test_image: str
) -> None:
    seed = int(os.environ.get("MEDIC_SOAK_SEED") or random.randrange(1_000_000))
    print(f"soak seed {seed} (MEDIC_SOAK_SEED={seed} replays it)")
    soak = soak_module.run_soak(SOAK_MINUTES, seed, tmp_path, REPO_ROOT, warmup_s=45.0)
    print(soak_module.report(soak, soak_module.machine()))
    kinds = {f.kind for f in soak.faults}
    assert kinds == set(soak_module.KINDS), f"seed {seed}: every kind of fault came up"
    assert soak.problems == [], f"seed {seed}: " + "\n".join(soak.problems)

"""PostgreSQL: the test database, checked once per session.

Fixtures
    pg_dsn  session  DSN of the test database (MEDIC_TEST_PG_DSN overrides)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from typing import Any

import asyncpg
import pytest

from tests.helpers import SETUP_HINT

DEFAULT_PG_DSN = "postgresql://medic:medic@127.0.0.1:5432/medic"


async def _pg_select_one(dsn: str) -> Any:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return await conn.fetchval("SELECT 1")
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    dsn = os.environ.get("MEDIC_TEST_PG_DSN", DEFAULT_PG_DSN)
    # In a thread of its own: it must not touch pytest-asyncio's event loops.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        try:
            pool.submit(asyncio.run, _pg_select_one(dsn)).result(timeout=30)
        except Exception as exc:  # noqa: BLE001 - any failure here means "not answering"
            pytest.fail(
                f"PostgreSQL does not answer at {dsn} ({type(exc).__name__}: {exc}); {SETUP_HINT}",
                pytrace=False,
            )
    return dsn

"""The reconnect action against the real PostgreSQL.

"The database is away, then comes back" is a real TCP relay on 127.0.0.1 in
front of PostgreSQL: closed, nothing answers on its port (refused); opened,
every connection is relayed to the server. PostgreSQL itself keeps running.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from medic.config.checks import PostgresCheckOptions as PostgresOptions
from medic.heal.actions.base import ActionContext, ActionError, ServiceTarget
from medic.heal.actions.reconnect import Reconnect
from medic.heal.steps import run_step
from medic.host.postgres import dsn_label
from medic.host.resources import Resources
from tests.helpers import free_port

pytestmark = pytest.mark.postgres


class Relay:
    """A TCP relay from ``127.0.0.1:port`` to PostgreSQL, which can be opened later."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.port = free_port()
        self.target = (target_host, target_port)
        self.server: asyncio.Server | None = None
        self.pipes: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        for task in list(self.pipes):
            task.cancel()
        await asyncio.gather(*self.pipes, return_exceptions=True)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(_pipe(src, dst))
            self.pipes.add(task)
            task.add_done_callback(self.pipes.discard)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


@pytest.fixture
async def relay(pg_dsn: str) -> AsyncIterator[Relay]:
    parts = urlsplit(pg_dsn)
    proxy = Relay(parts.hostname or "127.0.0.1", parts.port or 5432)
    yield proxy
    await proxy.close()


def _via(dsn: str, port: int, tag: str) -> str:
    parts = urlsplit(dsn)
    netloc = parts.netloc.rsplit(":", 1)[0] if parts.port else parts.netloc
    return f"{parts.scheme}://{netloc}:{port}{parts.path}?application_name={tag}"


def _reconnect(**options: Any) -> Reconnect:
    return Reconnect(Reconnect.options_model.model_validate({"action": "reconnect", **options}))


def _ctx(resources: Resources, tmp_path: Path, check_dsn: str | None = None) -> ActionContext:
    check = PostgresOptions(type="postgres", dsn=check_dsn) if check_dsn else None
    service = ServiceTarget(name="database", check=check)
    return ActionContext(resources=resources, state_dir=tmp_path, service=service)


async def _backend_pids(dsn: str, tag: str) -> set[int]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE application_name = $1", tag)
    finally:
        await conn.close()
    return {int(row["pid"]) for row in rows}


async def test_reopens_medics_connection_to_the_services_database(
    pg_dsn: str, resources: Resources, tmp_path: Path
) -> None:
    tag = f"medic-test-{secrets.token_hex(4)}"
    dsn = f"{pg_dsn}?application_name={tag}"
    await resources.postgres.fetchval(dsn, "SELECT 1")
    before = await _backend_pids(pg_dsn, tag)
    assert len(before) == 1

    result = await _reconnect().run(_ctx(resources, tmp_path, check_dsn=dsn))

    assert result.ok, result
    assert result.detail.startswith(
        f"reconnected to {dsn_label(dsn)}: SELECT 1 answered on attempt 1 after "
    )
    assert result.data["attempts"] == 1
    after = await _backend_pids(pg_dsn, tag)
    assert len(after) == 1 and after.isdisjoint(before), (before, after)


async def test_backs_off_until_the_database_comes_back(
    pg_dsn: str, relay: Relay, resources: Resources, tmp_path: Path
) -> None:
    dsn = _via(pg_dsn, relay.port, f"medic-test-{secrets.token_hex(4)}")
    action = _reconnect(dsn=dsn, initial_delay="50ms", max_delay="400ms", timeout="20s")
    started = time.monotonic()
    task = asyncio.create_task(action.run(_ctx(resources, tmp_path)))
    await asyncio.sleep(1.0)  # the database is away for this long
    assert not task.done()
    await relay.open()
    result = await asyncio.wait_for(task, 10)
    elapsed = time.monotonic() - started

    assert result.ok, result
    # Sleeps of 50 ms doubling to 400 ms, each cut by up to half (jitter): 5 to 9
    # refused attempts in the first second, then the one that gets through.
    assert 4 <= result.data["attempts"] <= 10, result
    assert elapsed < 1.0 + 0.4 + 1.0
    assert await resources.postgres.fetchval(dsn, "SELECT 1") == 1


async def test_gives_up_at_the_timeout_with_the_attempts_and_last_error(
    pg_dsn: str, relay: Relay, resources: Resources, tmp_path: Path
) -> None:
    dsn = _via(pg_dsn, relay.port, "medic-test")
    action = _reconnect(dsn=dsn, initial_delay="100ms", max_delay="200ms", timeout="1s")
    outcome = await asyncio.wait_for(run_step(action.options, _ctx(resources, tmp_path)), 10)
    assert outcome.outcome == "failed"
    assert outcome.detail.startswith(f"{dsn_label(dsn)} still not answering after ")
    assert outcome.detail.endswith(
        f"connection refused: Connect call failed ('127.0.0.1', {relay.port})"
    )
    assert 0.9 < outcome.duration_s < 2.5
    assert outcome.data["attempts"] >= 4


async def test_dsn_from_the_environment(
    pg_dsn: str, resources: Resources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDIC_TEST_RECONNECT_DSN", pg_dsn)
    result = await _reconnect(dsn_env="MEDIC_TEST_RECONNECT_DSN").run(_ctx(resources, tmp_path))
    assert result.ok


async def test_without_a_database_it_says_what_is_missing(
    resources: Resources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ActionError, match="reconnect needs a database"):
        _reconnect().describe(_ctx(resources, tmp_path))
    monkeypatch.delenv("MEDIC_TEST_UNSET", raising=False)
    with pytest.raises(ActionError, match="environment variable MEDIC_TEST_UNSET is not set"):
        await _reconnect(dsn_env="MEDIC_TEST_UNSET").run(_ctx(resources, tmp_path))


def test_at_most_one_dsn_source() -> None:
    with pytest.raises(ValueError, match="give at most one of dsn, dsn_env, dsn_file"):
        _reconnect(dsn="postgresql://a@b/c", dsn_env="X")


def test_describe_never_shows_the_password(tmp_path: Path) -> None:
    ctx = _ctx(Resources(), tmp_path, check_dsn="postgresql://medic:s3cret@db.internal:6432/app")
    text = _reconnect(timeout="30s").describe(ctx)
    assert text == (
        "drop and reopen medic's connection to db.internal:6432/app until it answers (up to 30s)"
    )

"""The postgres check against the real PostgreSQL of the test environment.

Failures are produced for real: a wrong password, a port nobody listens on, a
database that does not exist, medic's own backend terminated mid-query by
``pg_terminate_backend``, a query slower than the timeout. PostgreSQL itself
is never stopped here (``tests/test_heal_database.py`` does that).
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from pydantic import ValidationError

from medic.config.checks import PostgresCheckOptions
from medic.config.models import MonitoringConfig, ServiceConfig, ServiceSpec
from medic.core.vocabulary import FailureType
from medic.host.postgres import APPLICATION_NAME, DsnUnavailable, dsn_label
from medic.host.resources import Resources
from medic.tell.metrics import Metrics
from medic.watch.checks.base import CheckResult, CheckTarget
from medic.watch.checks.postgres import PostgresCheck
from medic.watch.classify import classify_exception
from medic.watch.runner import CheckRunner, build_check
from tests.helpers import async_wait_for, free_port

pytestmark = pytest.mark.postgres


def _check(resources: Resources, timeout_s: float | None = 5.0, **options: Any) -> PostgresCheck:
    opts = PostgresCheckOptions.model_validate({"type": "postgres", **options})
    return PostgresCheck(opts, CheckTarget(service="db", timeout_s=timeout_s), resources)


def _with(dsn: str, *, password: str | None = None, port: int | None = None, db: str = "") -> str:
    """``dsn`` with another password, port or database."""
    parts = urlsplit(dsn)
    user = parts.username or ""
    secret = parts.password if password is None else password
    netloc = f"{user}:{secret}@{parts.hostname}:{port or parts.port or 5432}"
    return urlunsplit((parts.scheme, netloc, "/" + (db or parts.path.lstrip("/")), "", ""))


async def _admin(dsn: str, query: str, *args: Any) -> Any:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


async def _backends(dsn: str, application_name: str) -> int:
    count = await _admin(
        dsn,
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE application_name = $1 AND pid <> pg_backend_pid()",
        application_name,
    )
    return int(count)


def _failed(result: CheckResult, failure_type: FailureType, reason: str | None = None) -> None:
    assert not result.healthy, result
    assert result.failure_type is failure_type, result
    if reason is not None:
        assert result.data["reason"] == reason, result


# -- healthy, and where the DSN comes from -----------------------------------------


async def test_select_1_through_medics_own_pool(pg_dsn: str, resources: Resources) -> None:
    result = await _check(resources, dsn=pg_dsn).probe()
    assert result.healthy, result
    assert result.detail == f"{dsn_label(pg_dsn)}: SELECT 1 answered 1"
    assert "medic:medic@" not in result.detail  # never the password
    # The connection stays open in medic's pool, named so operators can see it.
    assert await _backends(pg_dsn, APPLICATION_NAME) >= 1


async def test_dsn_from_env_and_from_file(
    pg_dsn: str, resources: Resources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDIC_TEST_PG_URL", pg_dsn)
    assert (await _check(resources, dsn_env="MEDIC_TEST_PG_URL").probe()).healthy
    secret = tmp_path / "dsn"
    secret.write_text(pg_dsn + "\n")
    assert (await _check(resources, dsn_file=str(secret)).probe()).healthy


async def test_missing_dsn_variable_is_a_check_error_not_a_database_failure(
    resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MEDIC_TEST_UNSET", raising=False)
    with pytest.raises(DsnUnavailable) as caught:
        await _check(resources, dsn_env="MEDIC_TEST_UNSET").probe()
    assert classify_exception(caught.value) == (
        None,
        "check error: DsnUnavailable: environment variable MEDIC_TEST_UNSET is not set",
    )


async def test_custom_query(pg_dsn: str, resources: Resources) -> None:
    result = await _check(resources, dsn=pg_dsn, query="SELECT current_user").probe()
    assert result.healthy
    assert result.detail.endswith("SELECT current_user answered 'medic'")


@pytest.mark.parametrize(
    "options",
    [{}, {"dsn": "postgresql://a@b/c", "dsn_env": "X"}, {"dsn_env": "X", "dsn_file": "/f"}],
)
def test_exactly_one_dsn_source(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="exactly one of dsn, dsn_env, dsn_file"):
        PostgresCheckOptions.model_validate({"type": "postgres", **options})


def test_relative_dsn_file_is_relative_to_the_config(tmp_path: Path) -> None:
    opts = PostgresCheckOptions.model_validate(
        {"type": "postgres", "dsn_file": "secrets/dsn"}, context={"base_dir": tmp_path}
    )
    assert opts.dsn_file == tmp_path / "secrets" / "dsn"


# -- failures: database_connection with the reason ----------------------------------


async def test_wrong_password_is_an_authentication_failure(
    pg_dsn: str, resources: Resources
) -> None:
    result = await _check(resources, dsn=_with(pg_dsn, password="wrong")).probe()
    _failed(result, FailureType.DATABASE_CONNECTION, "authentication failed")
    assert "password authentication failed" in result.detail
    assert "wrong" not in result.detail


async def test_nobody_listening_is_refused_not_a_crash(pg_dsn: str, resources: Resources) -> None:
    result = await _check(resources, dsn=_with(pg_dsn, port=free_port())).probe()
    _failed(result, FailureType.DATABASE_CONNECTION, "connection refused")


async def test_missing_database(pg_dsn: str, resources: Resources) -> None:
    dsn = _with(pg_dsn, db=f"nope_{secrets.token_hex(4)}")
    result = await _check(resources, dsn=dsn).probe()
    _failed(result, FailureType.DATABASE_CONNECTION, "no such database")


async def test_backend_terminated_mid_query_is_a_dropped_connection(
    pg_dsn: str, resources: Resources
) -> None:
    tag = f"medic-test-{secrets.token_hex(4)}"
    dsn = f"{pg_dsn}?application_name={tag}"
    probe = asyncio.create_task(_check(resources, dsn=dsn, query="SELECT pg_sleep(30)").probe())
    await async_wait_for(lambda: _backends(pg_dsn, tag), 10, message="medic's backend")
    await _admin(
        pg_dsn,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
        tag,
    )
    result = await asyncio.wait_for(probe, 10)
    _failed(result, FailureType.DATABASE_CONNECTION, "connection dropped")
    # The pool heals itself on the next probe: the server is fine.
    assert (await _check(resources, dsn=dsn).probe()).healthy


async def test_slow_answer_is_a_database_timeout(pg_dsn: str, resources: Resources) -> None:
    check = _check(resources, timeout_s=0.5, dsn=pg_dsn, query="SELECT pg_sleep(10)")
    result = await asyncio.wait_for(check.probe(), 5)
    _failed(result, FailureType.DATABASE_CONNECTION, "timeout")
    assert result.detail == f"{dsn_label(pg_dsn)}: timeout: no answer within 0.45s"


async def test_failing_query_is_an_unhealthy_response(pg_dsn: str, resources: Resources) -> None:
    result = await _check(resources, dsn=pg_dsn, query="SELECT * FROM no_such_table").probe()
    _failed(result, FailureType.UNHEALTHY_RESPONSE)
    assert result.data["sqlstate"] == "42P01"
    assert 'relation "no_such_table" does not exist' in result.detail


async def test_dropping_the_pool_closes_medics_connection(
    pg_dsn: str, resources: Resources
) -> None:
    tag = f"medic-test-{secrets.token_hex(4)}"
    dsn = f"{pg_dsn}?application_name={tag}"
    assert (await _check(resources, dsn=dsn).probe()).healthy
    assert await _backends(pg_dsn, tag) == 1
    assert await resources.postgres.drop(dsn)
    await async_wait_for(
        lambda: _gone(pg_dsn, tag), 10, message="medic's backend closed after drop"
    )
    assert not await resources.postgres.drop(dsn)


async def _gone(dsn: str, tag: str) -> bool:
    return await _backends(dsn, tag) == 0


# -- through the runner ---------------------------------------------------------------


async def test_runner_keeps_the_database_classification(pg_dsn: str, resources: Resources) -> None:
    svc = ServiceConfig.model_validate(
        {"check": {"type": "postgres", "dsn": _with(pg_dsn, port=free_port())}, "timeout": "2s"}
    )
    spec = ServiceSpec.resolve("db", svc, MonitoringConfig())
    probe = await CheckRunner(resources, Metrics()).run(spec, build_check(spec, resources))
    _failed(probe.result, FailureType.DATABASE_CONNECTION, "connection refused")


async def test_closing_the_check_closes_medics_connection(
    pg_dsn: str, resources: Resources
) -> None:
    tag = f"medic-test-{secrets.token_hex(4)}"
    check = _check(resources, dsn=f"{pg_dsn}?application_name={tag}")
    assert (await check.probe()).healthy
    await check.close()
    await async_wait_for(lambda: _gone(pg_dsn, tag), 10, message="backend closed on close()")

"""Evidence before acting: what a container showed before a recovery acts on it.

A restart loses the container's state (its exit code, ``OOMKilled``, its
HEALTHCHECK runs): it is read first, with ``inspect``, and a recovery waits
for it at most ``WAIT_S`` before its first step. The log's tail is read at the
same time, up to the moment the recovery began (``until``): Docker's log
outlives a restart, so when the engine is slow the steps go on and the tail
is read meanwhile (a recreated container's log goes with it: what was not read
by then is noted as lost). Secrets medic knows are masked in what is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from medic.config.models import Playbook
from medic.core.errors import MedicError
from medic.core.logging import get_logger
from medic.core.records import ContainerEvidence, HealthProbe
from medic.core.redact import MASK, redact_urls
from medic.heal.actions.base import ServiceTarget
from medic.host.docker import DockerGateway

log = get_logger("RecoveryEngine")

CONTAINER_ACTIONS = frozenset({"restart_container", "start_container", "recreate_container"})
"""Steps that act on a container: a playbook with one keeps its evidence first."""
LOG_LINES = 50
LOG_BYTES = 8192
HEALTH_OUTPUT_CHARS = 1000
WAIT_S = 0.2
"""How long a recovery waits for the evidence before its first step."""
LOG_WAIT_S = 5.0
"""How long the log's tail is waited for in all (read on while the steps run)."""
_MIN_SECRET = 4
"""Shorter values are not masked: they would mask half the log."""


def evidence_target(playbook: Playbook, service: ServiceTarget | None) -> str | None:
    """The container the playbook acts on first, if it acts on one."""
    for step in playbook.steps:
        if step.action in CONTAINER_ACTIONS:
            named = getattr(step, "container", None)
            return str(named) if named else (service.container if service else None)
    return None


async def gather_evidence(
    docker: DockerGateway, container: str, secrets: Iterable[str]
) -> asyncio.Task[ContainerEvidence]:
    """Start reading; return once the state is read (at most ``WAIT_S``). The
    task returned ends with the evidence once the log's tail is read too
    (at most ``LOG_WAIT_S`` in all)."""
    at = time.time()
    state = asyncio.ensure_future(docker.inspect_raw(container))
    tail = asyncio.ensure_future(docker.log_tail(container, LOG_LINES, at))
    # Only the state must be read before a step acts (a start overwrites it);
    # the log is read up to ``at`` and survives a restart: it is read on meanwhile.
    await asyncio.wait({state}, timeout=WAIT_S)
    notes: list[str] = []
    inspected: dict[str, Any] | None = None
    if state.done():
        inspected, error = _outcome(state)
        if error:
            notes.append(f"state not read: {error}")
    else:
        # Read after the steps began, it would show the restarted container.
        state.cancel()
        notes.append(f"state not read: the engine did not answer within {WAIT_S * 1000:.0f} ms")
    mask = tuple(s for s in secrets if len(s) >= _MIN_SECRET)
    return asyncio.ensure_future(_complete(container, at, inspected, tail, notes, mask))


def _outcome(task: asyncio.Future[Any]) -> tuple[Any, str | None]:
    error = task.exception()
    if error is None:
        return task.result(), None
    return None, str(error) or type(error).__name__


async def _complete(
    container: str,
    at: float,
    inspected: dict[str, Any] | None,
    tail: asyncio.Future[bytes],
    notes: list[str],
    secrets: tuple[str, ...],
) -> ContainerEvidence:
    text, count = "", 0
    try:
        raw = await asyncio.wait_for(tail, LOG_WAIT_S - WAIT_S)
    except TimeoutError:
        notes.append(f"log not read: the engine did not answer within {LOG_WAIT_S:g} s")
    except (MedicError, OSError, Exception) as exc:  # noqa: BLE001 - the engine's errors vary
        notes.append(f"log not read: {exc or type(exc).__name__}")
    else:
        text, count = _log_text(raw, secrets)
    state = (inspected or {}).get("State") or {}
    health = state.get("Health") or {}
    return ContainerEvidence(
        container=container,
        gathered_at=at,
        status=state.get("Status"),
        exit_code=state.get("ExitCode") if inspected else None,
        oom_killed=bool(state.get("OOMKilled")) if inspected else None,
        health_status=health.get("Status"),
        health_log=tuple(_probe(p, secrets) for p in (health.get("Log") or ())[-5:]),
        log=text,
        log_lines=count,
        notes=tuple(notes),
    )


def _log_text(raw: bytes, secrets: tuple[str, ...]) -> tuple[str, int]:
    """The tail's last ``LOG_BYTES`` as text (whole lines), masked; and its line count."""
    cut = len(raw) > LOG_BYTES
    text = raw[-LOG_BYTES:].decode("utf-8", errors="replace")
    if cut and "\n" in text:
        text = text.split("\n", 1)[1]  # the first line was cut: drop what is left of it
    text = mask_secrets(text, secrets)
    return text, len(text.splitlines())


def _probe(entry: dict[str, Any], secrets: tuple[str, ...]) -> HealthProbe:
    output = str(entry.get("Output") or "")[-HEALTH_OUTPUT_CHARS:]
    return HealthProbe(
        start=str(entry.get("Start") or ""),
        exit_code=int(entry.get("ExitCode") or 0),
        output=mask_secrets(output, secrets),
    )


def mask_secrets(text: str, secrets: Iterable[str]) -> str:
    """``text`` with URL passwords and each of ``secrets`` replaced by ``***``."""
    text = redact_urls(text)
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def known_secrets(service: ServiceTarget | None) -> list[str]:
    """The secrets medic knows for the service: its check's database password
    (from ``dsn``, ``dsn_env`` or ``dsn_file``) and the DSN read from them."""
    check = service.check if service else None
    if check is None:
        return []
    values: list[str] = []
    dsn_env, dsn_file = getattr(check, "dsn_env", None), getattr(check, "dsn_file", None)
    dsn = getattr(check, "dsn", None)
    if isinstance(dsn_env, str):
        env_value = os.environ.get(dsn_env)
        values += [env_value] if env_value else []
        dsn = env_value or dsn
    if isinstance(dsn_file, Path):
        with contextlib.suppress(OSError):
            dsn = dsn_file.read_text().strip()
            values.append(dsn)
    if isinstance(dsn, str):
        with contextlib.suppress(ValueError):
            password = urlsplit(dsn).password
            values += [password] if password else []
    return values


def brief(evidence: ContainerEvidence, lines: int = 10, chars: int = 1024) -> dict[str, Any]:
    """The evidence as events and webhooks carry it: the state and the log's
    last ``lines`` lines (at most ``chars``)."""
    tail = "\n".join(evidence.log.splitlines()[-lines:])[-chars:]
    last_health = evidence.health_log[-1].output[-chars:] if evidence.health_log else None
    return {
        "container": evidence.container,
        "status": evidence.status,
        "exit_code": evidence.exit_code,
        "oom_killed": evidence.oom_killed,
        "health_status": evidence.health_status,
        "health_output": last_health,
        "log_tail": tail,
        "log_lines": evidence.log_lines,
        "notes": list(evidence.notes),
    }

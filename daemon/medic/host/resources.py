"""Long-lived clients shared by checks and actions: one HTTP session, one Docker
gateway, medic's own PostgreSQL pools, the supervisor of the services'
processes. Nothing opens here: each is made on the running loop when first
needed. The daemon closes each as its own part (``medic.orchestrator``);
``close()`` closes them all at once for users outside the daemon."""

from __future__ import annotations

import tempfile
from pathlib import Path

import aiohttp

from medic.host.docker import DockerGateway
from medic.host.http_probe import HttpProbes
from medic.host.postgres import PostgresPools
from medic.host.processes.supervisor import ProcessSupervisor

_KEEPALIVE_S = 4.0
"""How long an idle connection of the shared HTTP session is kept for reuse."""


class Resources:
    def __init__(self, *, http_connection_limit: int = 256, state_dir: Path | None = None) -> None:
        self._http: aiohttp.ClientSession | None = None
        self._http_limit = http_connection_limit
        self.http_probes = HttpProbes()
        """The lean client of the common ``http`` probe (plain http, GET, status only)."""
        self.docker = DockerGateway()
        self.postgres = PostgresPools()
        """One asyncpg pool per DSN: the ``postgres`` check's and ``reconnect``'s."""
        self.processes = ProcessSupervisor(state_dir or Path(tempfile.gettempdir()) / "medic")
        """The services' ``process:`` programs; logs go to ``<state_dir>/logs``."""

    @property
    def http(self) -> aiohttp.ClientSession:
        """The shared client session.

        Idle connections are kept for ``_KEEPALIVE_S``, below the usual server
        keep-alive timeouts (5 s and more), so a check every few seconds reuses
        one instead of connecting anew. A restarted server is still seen: the
        connections to the old process are closed, so the next check connects
        fresh (and a GET that meets a connection closed under it is retried once
        on a new one by aiohttp).
        """
        if self._http is None or self._http.closed:
            connector = aiohttp.TCPConnector(
                limit=self._http_limit,
                limit_per_host=16,
                keepalive_timeout=_KEEPALIVE_S,
                ttl_dns_cache=10,
            )
            # No cookie jar: health probes must not carry state from one to the next
            # (and parsing Set-Cookie on every probe costs CPU at a thousand a second).
            self._http = aiohttp.ClientSession(
                connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar()
            )
        return self._http

    async def close_http(self) -> None:
        self.http_probes.close()
        if self._http is not None:
            await self._http.close()

    async def close(self) -> None:
        """Stop the supervised processes, then close every client."""
        await self.processes.shutdown()
        await self.close_http()
        await self.postgres.close()
        self.docker.close()

"""Long-lived clients shared by checks and actions: one HTTP session, one Docker
gateway, medic's own PostgreSQL pools, the supervisor of the services'
processes. Created lazily on the running loop and
closed once at shutdown."""

from __future__ import annotations

import tempfile
from pathlib import Path

import aiohttp

from medic.containers import DockerGateway
from medic.pgpool import PostgresPools
from medic.supervisor import ProcessSupervisor


class Resources:
    def __init__(self, *, http_connection_limit: int = 256, state_dir: Path | None = None) -> None:
        self._http: aiohttp.ClientSession | None = None
        self._http_limit = http_connection_limit
        self.docker = DockerGateway()
        self.postgres = PostgresPools()
        """One asyncpg pool per DSN: the ``postgres`` check's and ``reconnect``'s."""
        self.processes = ProcessSupervisor(state_dir or Path(tempfile.gettempdir()) / "medic")
        """The services' ``process:`` programs; logs go to ``<state_dir>/logs``."""

    @property
    def http(self) -> aiohttp.ClientSession:
        """The shared client session; keep-alive off so a restarted server is seen fresh."""
        if self._http is None or self._http.closed:
            connector = aiohttp.TCPConnector(
                limit=self._http_limit, limit_per_host=16, force_close=True, ttl_dns_cache=10
            )
            self._http = aiohttp.ClientSession(connector=connector, trust_env=False)
        return self._http

    async def close(self) -> None:
        await self.processes.shutdown()
        if self._http is not None:
            await self._http.close()
        await self.postgres.close()
        self.docker.close()

"""The ``fleet:`` section: several hosts coordinated through etcd v3.

Without it nothing about the daemon changes (and ``aetcd`` is never imported).
"""

from __future__ import annotations

import re
import socket

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from medic.config.types import Duration, RelPath

_ENDPOINT = re.compile(r"^(?:https?://)?(?P<host>\[[0-9a-fA-F:]+\]|[^:/\s]+):(?P<port>\d{1,5})/?$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """``host:port`` (an ``http://`` or ``https://`` in front is allowed) as a pair."""
    match = _ENDPOINT.match(endpoint)
    if match is None:
        raise ValueError(f"an etcd endpoint is HOST:PORT, e.g. 127.0.0.1:2379 (got {endpoint!r})")
    port = int(match.group("port"))
    if not 0 < port < 65536:
        raise ValueError(f"port out of range in {endpoint!r}")
    return match.group("host").strip("[]"), port


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EtcdConfig(_Section):
    endpoints: list[str] = Field(min_length=1)
    """Tried in order; on a failure medic moves on to the next one."""
    prefix: str = "/medic"
    ca_file: RelPath | None = None
    cert_file: RelPath | None = None
    key_file: RelPath | None = None
    username: str | None = None
    password_env: str | None = None
    password_file: RelPath | None = None
    timeout: Duration = Field(default=2.0, gt=0)
    """How long one etcd call may take before the endpoint counts as failed."""

    @field_validator("endpoints")
    @classmethod
    def _endpoints(cls, endpoints: list[str]) -> list[str]:
        for endpoint in endpoints:
            split_endpoint(endpoint)
        return endpoints

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, prefix: str) -> str:
        if not prefix.startswith("/") or prefix.endswith("/") or len(prefix) < 2:
            raise ValueError(f"prefix must start with / and not end with one (got {prefix!r})")
        return prefix

    @model_validator(mode="after")
    def _pairs(self) -> EtcdConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (client certificate and its key)")
        password = self.password_env is not None or self.password_file is not None
        if self.password_env is not None and self.password_file is not None:
            raise ValueError("give one of password_env and password_file, not both")
        if password != (self.username is not None):
            raise ValueError("username needs password_env or password_file, and they need it")
        return self

    @property
    def tls(self) -> bool:
        return self.ca_file is not None or self.cert_file is not None


class FleetConfig(_Section):
    etcd: EtcdConfig
    host: str = Field(default_factory=socket.gethostname)
    group: str = "default"
    lease_ttl: Duration = Field(default=10.0, ge=2, le=300)
    disruptive_concurrency: int = Field(default=1, ge=1)
    """Restarts (and recreates, unit restarts) running at once across the group."""
    disruptive_wait: Duration = Field(default=30.0, ge=0)
    """How long a disruptive step waits for a slot before it is held ``fleet_concurrency``."""
    max_failing_hosts_fraction: float = Field(default=0.5, gt=0, le=1)
    summary_interval: Duration = Field(default=30.0, ge=1)
    """At most one summary write per this long (a change waits for it)."""

    @field_validator("host", "group")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"must be letters, digits, '.', '_' or '-' (got {value!r})")
        return value

"""``api:``: where the HTTP API listens and who may call it (tokens and their scopes)."""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from medic.config.section import Section
from medic.config.types import Duration, RelPath

_LISTEN = re.compile(r"^(?P<host>\[[0-9a-fA-F:]+\]|[^:\s]+):(?P<port>\d{1,5})$")


Scope = Literal["read", "operate", "admin"]
"""What a token may do: GET, then check/recover/reset/approve, then everything."""


class ApiToken(Section):
    """One entry of ``api.tokens``: a named bearer token and what it may do."""

    name: str = Field(min_length=1)
    token_env: str | None = None
    token_file: RelPath | None = None
    scopes: tuple[Scope, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_source(self) -> ApiToken:
        if (self.token_env is None) == (self.token_file is None):
            raise ValueError("give exactly one of token_env and token_file")
        return self


class ApiConfig(Section):
    enabled: bool = True
    listen: str = "127.0.0.1:8321"
    token_env: str | None = None
    """The single token of old: it has every scope (named ``default`` in the audit)."""
    token_file: RelPath | None = None
    tokens: tuple[ApiToken, ...] = ()
    auth_reads: bool = False
    allow_unauthenticated_reads: bool = False
    """On a non-loopback ``listen``, GETs need a ``read`` token unless this is on."""
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    max_event_clients: int = Field(default=100, ge=1)
    """Open event streams at once; one more is answered 503."""
    public_url: str | None = Field(default=None, pattern=r"^https?://")
    """Where people reach the status page; notifications link to it."""
    event_client_write_timeout: Duration = Field(default=30.0, gt=0)
    """An event stream whose client takes no bytes for this long is dropped."""

    @field_validator("tokens")
    @classmethod
    def _unique_names(cls, value: tuple[ApiToken, ...]) -> tuple[ApiToken, ...]:
        names = [t.name for t in value]
        doubled = sorted({n for n in names if names.count(n) > 1} | ({"default"} & set(names)))
        if doubled:
            raise ValueError(f"token names must be unique and not 'default': {doubled}")
        return value

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        match = _LISTEN.match(value)
        if not match or not 0 < int(match.group("port")) < 65536:
            raise ValueError(f"listen must be HOST:PORT, e.g. 127.0.0.1:8321 (got {value!r})")
        return value

    @property
    def host(self) -> str:
        match = _LISTEN.match(self.listen)
        assert match is not None
        return match.group("host").strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    @property
    def loopback(self) -> bool:
        """Whether ``listen`` is reachable from this host only."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False  # a name: it may resolve to anything

    @property
    def has_token(self) -> bool:
        return bool(self.token_env or self.token_file or self.tokens)

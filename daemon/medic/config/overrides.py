"""What ``medic run`` flags change in a loaded config: ``--listen`` moves
``api.listen``, and the checks that probe medic's own API at the old address
(the default config's ``medic-api``) follow it to the new one."""

from __future__ import annotations

import urllib.parse

from medic.config.checks import HttpCheckOptions
from medic.config.models import ApiConfig, Config

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def valid_listen(text: str) -> str:
    """``text`` if it is a HOST:PORT ``api.listen`` takes; ``ValueError`` says why not."""
    try:
        return ApiConfig(listen=text).listen
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise ValueError(f"must be HOST:PORT, e.g. 127.0.0.1:8321 (got {text!r})") from exc


def with_listen(config: Config, listen: str) -> Config:
    old = config.api
    new = old.model_copy(update={"listen": valid_listen(listen)})
    services = {
        name: svc.model_copy(update={"check": _follow(svc.check, old, new)})
        if isinstance(svc.check, HttpCheckOptions)
        else svc
        for name, svc in config.services.items()
    }
    return config.model_copy(update={"api": new, "services": services})


def _follow(check: HttpCheckOptions, old: ApiConfig, new: ApiConfig) -> HttpCheckOptions:
    """The check, pointed at ``new`` when it probes medic's API at ``old``."""
    parts = urllib.parse.urlsplit(check.url)
    same_host = parts.hostname == old.host or (
        parts.hostname in _LOOPBACK and old.host in (*_LOOPBACK, "0.0.0.0", "::")
    )
    if not same_host or parts.port != old.port:
        return check
    host = "127.0.0.1" if new.host in ("0.0.0.0", "::") else new.host
    netloc = f"[{host}]:{new.port}" if ":" in host else f"{host}:{new.port}"
    return check.model_copy(update={"url": urllib.parse.urlunsplit(parts._replace(netloc=netloc))})

"""The etcd client adapter: ``aetcd`` behind a few calls, with failover.

``aetcd`` talks to one ``host:port``: when a call to it fails or takes longer
than ``etcd.timeout``, the link drops that connection and moves to the next
endpoint; a call fails (``FleetUnavailable``) only when every endpoint did.
TLS (``ca_file``, ``cert_file``, ``key_file``) builds a secure gRPC channel;
``username`` with ``password_env``/``password_file`` authenticates.

This is the only module that imports ``aetcd`` (and only the fleet imports it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aetcd
import grpc

from medic.config.fleet import EtcdConfig, split_endpoint
from medic.core.errors import MedicError
from medic.core.logging import get_logger

log = get_logger("medic.fleet")

T = TypeVar("T")


class FleetUnavailable(MedicError):
    """No etcd endpoint answered."""


class _TlsClient(aetcd.Client):  # type: ignore[misc]  # aetcd is untyped
    """``aetcd.Client`` over a TLS channel (aetcd itself opens only insecure ones)."""

    def __init__(self, credentials: grpc.ChannelCredentials, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._credentials = credentials

    async def connect(self) -> None:
        if self._connected.is_set():
            return
        insecure = aetcd.rpc.insecure_channel
        aetcd.rpc.insecure_channel = lambda target, options: grpc.aio.secure_channel(
            target, self._credentials, options=options
        )
        try:
            await super().connect()
        finally:
            aetcd.rpc.insecure_channel = insecure


def _password(cfg: EtcdConfig) -> str | None:
    if cfg.password_env is not None:
        return os.environ.get(cfg.password_env)
    if cfg.password_file is not None:
        return cfg.password_file.read_text().strip()
    return None


def _credentials(cfg: EtcdConfig) -> grpc.ChannelCredentials:
    def read(path: object) -> bytes | None:
        return None if path is None else open(str(path), "rb").read()

    return grpc.ssl_channel_credentials(
        root_certificates=read(cfg.ca_file),
        private_key=read(cfg.key_file),
        certificate_chain=read(cfg.cert_file),
    )


class EtcdLink:
    def __init__(self, cfg: EtcdConfig) -> None:
        self.cfg = cfg
        self._index = 0
        self._client: aetcd.Client | None = None

    @property
    def endpoint(self) -> str:
        return self.cfg.endpoints[self._index]

    def _make_client(self) -> aetcd.Client:
        host, port = split_endpoint(self.endpoint)
        password = _password(self.cfg)
        kwargs: dict[str, Any] = {
            "host": host,
            "port": port,
            "timeout": self.cfg.timeout,
            "connect_wait_timeout": self.cfg.timeout,
        }
        if self.cfg.username is not None and password is not None:
            kwargs.update(username=self.cfg.username, password=password)
        if self.cfg.tls:
            return _TlsClient(_credentials(self.cfg), **kwargs)
        return aetcd.Client(**kwargs)

    def client(self) -> aetcd.Client:
        if self._client is None:
            self._client = self._make_client()
        return self._client

    async def drop(self, move_on: bool = True) -> None:
        """Close the connection; the next call uses the next endpoint."""
        client, self._client = self._client, None
        if move_on:
            self._index = (self._index + 1) % len(self.cfg.endpoints)
        if client is not None:
            # A broken channel may fail to close.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), self.cfg.timeout)

    async def call(self, op: Callable[[aetcd.Client], Awaitable[T]]) -> T:
        """Run ``op`` on the current endpoint, moving on to the next on a failure."""
        last: BaseException | None = None
        for _ in self.cfg.endpoints:
            endpoint = self.endpoint
            try:
                return await asyncio.wait_for(op(self.client()), self.cfg.timeout)
            except (aetcd.exceptions.ClientError, grpc.RpcError, TimeoutError, OSError) as e:
                last = e
                log.info(
                    "fleet.endpoint_failed",
                    message="An etcd endpoint failed; trying the next one",
                    endpoint=endpoint,
                    error=repr(e),
                )
                await self.drop()
        raise FleetUnavailable(f"no etcd endpoint answered ({last!r})")

    async def close(self) -> None:
        await self.drop(move_on=False)

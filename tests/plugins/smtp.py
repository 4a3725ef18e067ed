"""A real SMTP server on 127.0.0.1 (aiosmtpd, in a thread of its own) that keeps
every message it is given.

Fixtures
    smtp_server  function  SmtpServer: ``.port``, ``.messages`` (parsed
                           ``email.message.EmailMessage``), ``.wait(count)``;
                           accepts any login (``user:password``) without TLS
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, Session

from tests.helpers import async_wait_for, free_port, wait_for


class SmtpServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[EmailMessage] = []
        self.logins: list[str] = []
        self._lock = threading.Lock()
        self._controller = Controller(
            self,
            hostname="127.0.0.1",
            port=self.port,
            authenticator=self._authenticate,
            auth_require_tls=False,
        )

    def url(self, to: str = "ops@example.com", login: str = "") -> str:
        """The Apprise ``mailto://`` URL that reaches this server."""
        at = f"{login}@" if login else ""
        return f"mailto://{at}127.0.0.1:{self.port}?from=medic@example.com&to={to}&mode=insecure"

    def start(self) -> SmtpServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        parsed = message_from_bytes(content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        with self._lock:
            self.messages.append(parsed)
        return "250 OK"

    def _authenticate(
        self, server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        with self._lock:
            self.logins.append(f"{data.login.decode()}:{data.password.decode()}")
        return AuthResult(success=True)

    def received(self) -> list[EmailMessage]:
        with self._lock:
            return list(self.messages)

    def wait(self, count: int = 1, timeout: float = 15.0) -> list[EmailMessage]:
        def enough() -> list[EmailMessage] | None:
            found = self.received()
            return found if len(found) >= count else None

        return wait_for(enough, timeout, interval=0.05, message=f"{count} mail(s) did not arrive")

    async def arrival(self, count: int = 1, within_s: float = 15.0) -> list[EmailMessage]:
        def enough() -> list[EmailMessage] | None:
            found = self.received()
            return found if len(found) >= count else None

        return await async_wait_for(
            enough, within_s, interval=0.05, message=f"{count} mail(s) did not arrive"
        )


def text_of(mail: EmailMessage) -> str:
    """A mail's plain-text body."""
    part = mail.get_body(preferencelist=("plain",))
    assert part is not None, mail
    return str(part.get_content())


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    try:
        yield server
    finally:
        server.stop()

"""A real SMTP server for the mail tests: aiosmtpd on loopback with a scripted handler."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    size: int


@dataclass
class Mailbox:
    """Answers each DATA with the next scripted reply (``"451 4.3.0 busy"``), then 250.

    ``refuse_rcpt`` answers every RCPT TO with that reply instead (``"550 ..."``).
    """

    replies: list[str] = field(default_factory=list)
    refuse_rcpt: str | None = None
    received: list[Received] = field(default_factory=list)
    answered: list[str] = field(default_factory=list)  # every DATA reply given, in order
    arrived: threading.Event = field(default_factory=threading.Event)
    tls_seen: list[bool] = field(default_factory=list)
    auth_seen: list[Any] = field(default_factory=list)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.refuse_rcpt is not None:
            self.answered.append(self.refuse_rcpt)
            return self.refuse_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        # after STARTTLS, or TLS from the first byte (implicit: session.ssl stays None)
        self.tls_seen.append(server.transport.get_extra_info("ssl_object") is not None)
        self.auth_seen.append(session.authenticated)
        if self.replies:
            reply = self.replies.pop(0)
            self.answered.append(reply)
            return reply
        raw: bytes = envelope.original_content or envelope.content
        message = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(message, EmailMessage)
        self.received.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), message, len(raw))
        )
        self.answered.append("250")
        self.arrived.set()
        return "250 2.0.0 accepted"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Authenticator:
    """Accepts one login and password (AUTH PLAIN/LOGIN)."""

    def __init__(self, login: str, password: str) -> None:
        self.login, self.password = login.encode(), password.encode()

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.login
            and auth_data.password == self.password
        )
        return AuthResult(success=ok, handled=False)


@contextmanager
def smtp_server(
    mailbox: Mailbox,
    *,
    starttls: ssl.SSLContext | None = None,
    implicit_tls: ssl.SSLContext | None = None,
    authenticator: Authenticator | None = None,
) -> Iterator[int]:
    """Serve ``mailbox`` on 127.0.0.1; yields the port. With ``starttls`` the server
    requires STARTTLS (RFC 3207) before MAIL, with ``implicit_tls`` it speaks TLS from
    the first byte, with ``authenticator`` it requires AUTH."""
    port = free_port()
    kwargs: dict[str, Any] = {}
    if starttls is not None:
        kwargs |= {"tls_context": starttls, "require_starttls": True}
    if implicit_tls is not None:
        kwargs["ssl_context"] = implicit_tls
    if authenticator is not None:
        kwargs |= {
            "authenticator": authenticator,
            "auth_required": True,
            "auth_require_tls": starttls is not None,
        }
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()

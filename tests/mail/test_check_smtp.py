"""``callvault check`` reaches the mail server the way mail is sent: STARTTLS or TLS."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest

from callvault.check import check_smtp
from callvault.settings import load_settings
from tests.mail.smtp_server import Mailbox, smtp_server
from tests.sip.tls_certs import self_signed


def _findings(**settings: Any) -> list[tuple[str, str]]:
    found = list(check_smtp(load_settings(smtp_host="127.0.0.1", **settings)))
    return [(f.level, f.message) for f in found]


def test_starttls_and_implicit_tls_are_checked_with_the_certificate_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    certificate = self_signed(tmp_path, "mail")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(certificate.cert, certificate.key)
    with smtp_server(Mailbox(), starttls=server) as port:
        [(level, message)] = _findings(smtp_port=port, smtp_security="starttls")
        assert level == "error" and "CERTIFICATE_VERIFY_FAILED" in message
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate.cert))
        assert _findings(smtp_port=port, smtp_security="starttls") == [
            ("ok", f"mail server 127.0.0.1:{port} (starttls) answers")
        ]
    with smtp_server(Mailbox(), implicit_tls=server) as port:
        assert _findings(smtp_port=port, smtp_security="tls") == [
            ("ok", f"mail server 127.0.0.1:{port} (tls) answers")
        ]
    monkeypatch.delenv("SSL_CERT_FILE")
    with smtp_server(Mailbox()) as port:  # no STARTTLS offered: said, not sent in the clear
        [(level, message)] = _findings(smtp_port=port, smtp_security="starttls")
        assert level == "error" and "STARTTLS" in message

"""Sending one message through the provider's mail server (settings ``smtp_*``).

Plain, STARTTLS (RFC 3207) or implicit TLS, with optional AUTH. The answer
decides what happens next: a 4xx or a connection failure is temporary
(``MailTemporaryError``: retry later), a 5xx is permanent
(``MailPermanentError``: shown to the admin). Returning means the server
accepted the message (250) for every recipient.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from callvault.settings import Settings


class MailError(Exception):
    pass


class MailTemporaryError(MailError):
    """Try again later: 4xx, or the server could not be reached."""


class MailPermanentError(MailError):
    """The server refused for good (5xx), or no mail server is set."""


def _classify(code: int, text: str) -> MailError:
    if 400 <= code < 500:
        return MailTemporaryError(f"{code} {text}")
    return MailPermanentError(f"{code} {text}")


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def send(settings: Settings, message: EmailMessage, context: ssl.SSLContext | None = None) -> None:
    """Deliver ``message`` (its From/To headers say who); raises a ``MailError``."""
    if settings.smtp_host is None:
        raise MailPermanentError("no mail server is set (smtp_host)")
    host, port, timeout = settings.smtp_host, settings.smtp_port, settings.smtp_timeout_s
    context = context or ssl.create_default_context()
    try:
        if settings.smtp_security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(host, port, timeout=timeout)
        with client:
            client.ehlo()
            if settings.smtp_security == "starttls":
                client.starttls(context=context)
                client.ehlo()
            if settings.smtp_username:
                client.login(settings.smtp_username, settings.smtp_password or "")
            refused = client.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        code, text = next(iter(exc.recipients.values()))
        raise _classify(code, _text(text)) from exc
    except smtplib.SMTPResponseException as exc:
        raise _classify(exc.smtp_code, _text(exc.smtp_error)) from exc
    except (OSError, smtplib.SMTPException) as exc:  # unreachable, TLS failure, hung up
        raise MailTemporaryError(f"cannot reach the mail server {host}:{port}: {exc}") from exc
    if refused:  # some recipients refused: the worst answer decides
        code, text = max(refused.values())
        raise _classify(code, _text(text))

"""``callvault check``: is this installation ready to serve? (SPEC section 9)

Checks, leaving nothing behind, what ``serve`` would trip over: the
database (reachable, schema at head or behind by migrations that start-up
applies), the data directories (spool and blob store exist or can be made,
and are writable; with ``blob_store = "s3"`` the bucket answers a write, a
read and a confirmed delete of a probe object, and keeps no old versions),
the SIP TLS certificate (readable, key matching, in its validity period, CA
file readable), the port ranges (RTP range big enough, not overlapping SIP
or HTTP, ports free to bind) and SMTP (no settings yet: skipped). The
settings themselves were checked by loading them. One line per finding, in
words; ``run_checks`` returns 1 when any finding is an error, else 0.
"""

from __future__ import annotations

import os
import smtplib
import socket
import ssl
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TextIO

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from callvault.db.engine import alembic_config, make_engine
from callvault.settings import Settings
from callvault.storage.blobs import BlobNotFound, BlobStoreError

Level = Literal["ok", "warning", "error", "skipped"]

# fewer free RTP port pairs than this is a warning: each pair is one media stream
MIN_RTP_PAIRS = 50
# binding every RTP port to test it is fast, but not for absurd ranges
MAX_PORTS_PROBED = 40000


@dataclass(frozen=True)
class Finding:
    level: Level
    subject: str
    message: str

    def line(self) -> str:
        return f"{self.level:<8} {self.subject}: {self.message}"


def check_database(settings: Settings) -> Iterator[Finding]:
    url = settings.db_url
    shown = url.split("@")[-1] if "@" in url else url  # never print a password
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            yield from _directory("database", path.parent, "holds the SQLite database")
            if path.parent.exists() or _creatable(path.parent):
                yield Finding("ok", "database", f"{path} does not exist yet; start-up creates it")
            return
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text("select 1"))
            current = MigrationContext.configure(connection).get_current_heads()
    except Exception as exc:  # any driver's error: say what it said
        yield Finding("error", "database", f"cannot connect to {shown}: {_first_line(exc)}")
        return
    finally:
        engine.dispose()
    script = ScriptDirectory.from_config(alembic_config(url))
    head = script.get_current_head()
    known = {rev.revision for rev in script.walk_revisions()}
    if not current:
        yield Finding("ok", "database", f"{shown} is empty; start-up creates the schema")
    elif set(current) == {head}:
        yield Finding("ok", "database", f"{shown} is at the newest schema ({head})")
    elif set(current) <= known:
        behind = ", ".join(sorted(current))
        yield Finding("ok", "database", f"{shown} is at {behind}; start-up migrates it to {head}")
    else:
        yield Finding(
            "error",
            "database",
            f"{shown} is at {', '.join(sorted(current))}, which this version does not know"
            " (a newer callvault wrote it)",
        )


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _creatable(path: Path) -> bool:
    parent = path
    while not parent.exists():
        parent = parent.parent
    return parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)


def _directory(subject: str, path: Path, what: str) -> Iterator[Finding]:
    if not path.exists():
        if _creatable(path):
            return  # start-up makes it
        yield Finding("error", subject, f"{path} does not exist and cannot be created ({what})")
    elif not path.is_dir():
        yield Finding("error", subject, f"{path} is not a directory ({what})")
    else:
        try:
            with tempfile.NamedTemporaryFile(dir=path, prefix=".callvault-check-"):
                pass
        except OSError as exc:
            yield Finding("error", subject, f"cannot write in {path}: {exc.strerror or exc}")


def check_storage(settings: Settings) -> Iterator[Finding]:
    found = False
    places = [("spool", settings.spool_dir, "calls in progress are written here")]
    if settings.blob_store == "local":
        places.append(("blob store", settings.blob_dir, "finished recordings are kept here"))
    for subject, path, what in places:
        for finding in _directory(subject, path, what):
            found = True
            yield finding
    if settings.blob_store == "s3":
        yield from check_bucket(settings)
    elif not found:
        yield Finding("ok", "blob store", f"{settings.blob_dir} is writable (or can be created)")


def check_bucket(settings: Settings) -> Iterator[Finding]:
    """The S3 bucket answers a write, a read back and a confirmed delete (``S3BlobStore.probe``)."""
    from callvault.storage.s3 import S3BlobStore  # boto3 loads only when S3 is chosen

    where = f"bucket {settings.s3_bucket} at {settings.s3_endpoint_url or 'AWS S3'}"
    try:
        state = S3BlobStore.from_settings(settings, attempts=2).probe()
    except (BlobStoreError, BlobNotFound) as exc:
        reason = str(exc.__cause__ or exc).strip()[:300]
        yield Finding("error", "blob store", f"{where} is not usable: {reason}")
        return
    if state.versioning in ("Enabled", "Suspended"):
        yield Finding(
            "warning",
            "blob store",
            f"{where} keeps old versions ({state.versioning}): deleted recordings stay"
            " as noncurrent versions; turn versioning off or expire them by a lifecycle rule",
        )
    yield Finding("ok", "blob store", f"{where} is writable, readable and deletes")


def check_certificates(settings: Settings, now: datetime | None = None) -> Iterator[Finding]:
    cert, key, ca = settings.sip_tls_cert, settings.sip_tls_key, settings.sip_tls_ca
    if cert is None or key is None:
        yield Finding("ok", "tls", "SIP over TLS is off (sip_tls_cert and sip_tls_key unset)")
        return
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "reason", None) or _first_line(exc)
        if reason == "KEY_VALUES_MISMATCH":
            reason = "the key is not the certificate's key"
        yield Finding("error", "sip_tls_cert", f"{cert} with key {key}: {reason}")
        return
    try:
        decoded = ssl._ssl._test_decode_cert(str(cert))  # type: ignore[attr-defined]  # the stdlib's only PEM reader
        not_before = _cert_time(str(decoded["notBefore"]))
        not_after = _cert_time(str(decoded["notAfter"]))
    except (OSError, ssl.SSLError, KeyError, ValueError, AttributeError) as exc:
        yield Finding("error", "sip_tls_cert", f"{cert}: cannot read its dates: {exc}")
        return
    at = now or datetime.now(UTC)
    if not_after <= at:
        yield Finding("error", "sip_tls_cert", f"{cert} expired on {not_after:%Y-%m-%d}")
    elif not_before > at:
        yield Finding("error", "sip_tls_cert", f"{cert} is valid only from {not_before:%Y-%m-%d}")
    elif (not_after - at).days < 30:
        yield Finding("warning", "sip_tls_cert", f"{cert} expires on {not_after:%Y-%m-%d}")
    else:
        yield Finding(
            "ok", "sip_tls_cert", f"{cert} matches its key, valid until {not_after:%Y-%m-%d}"
        )
    if ca is not None:
        try:
            context.load_verify_locations(cafile=ca)
        except (OSError, ssl.SSLError) as exc:
            yield Finding("error", "sip_tls_ca", f"{ca} holds no readable certificate: {exc}")
        else:
            yield Finding("ok", "sip_tls_ca", f"{ca} is readable")


def _cert_time(value: str) -> datetime:
    return datetime.strptime(value, "%b %d %H:%M:%S %Y %Z").replace(tzinfo=UTC)


def _busy(host: str, port: int, kind: socket.SocketKind) -> str | None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def check_ports(
    settings: Settings, busy: Callable[[str, int, socket.SocketKind], str | None] = _busy
) -> Iterator[Finding]:
    low, high = settings.rtp_port_min, settings.rtp_port_max
    first = low + (low & 1)
    pairs = max(0, (high - first + 1) // 2)
    errors = False
    listeners: list[tuple[str, str, int, socket.SocketKind]] = [
        ("sip_port", settings.sip_host, settings.sip_port, socket.SOCK_DGRAM)
    ]
    if settings.sip_tcp:
        listeners.append(("sip_port", settings.sip_host, settings.sip_port, socket.SOCK_STREAM))
    if settings.sip_tls_cert is not None:
        listeners.append(
            ("sip_tls_port", settings.sip_host, settings.sip_tls_port, socket.SOCK_STREAM)
        )
    listeners.append(("http_port", settings.http_host, settings.http_port, socket.SOCK_STREAM))
    for key, _host, port, _kind in listeners:
        if port and low <= port <= high:
            errors = True
            yield Finding(
                "error",
                key,
                f"port {port} lies inside the RTP range rtp_port_min-rtp_port_max ({low}-{high})",
            )
    tcp = [(k, p) for k, _h, p, kind in listeners if kind == socket.SOCK_STREAM and p]
    for i, (key, port) in enumerate(tcp):
        for other, other_port in tcp[i + 1 :]:
            if port == other_port and key != other:
                errors = True
                yield Finding("error", other, f"port {port} is also {key} (both TCP)")
    if pairs < MIN_RTP_PAIRS:
        yield Finding(
            "warning",
            "rtp_port_min",
            f"the RTP range {low}-{high} holds {pairs} port pairs: at most {pairs} media"
            f" streams at once (a call needs two); widen rtp_port_max",
        )
    for key, host, port, kind in listeners:
        if port == 0:
            continue  # the system picks one at start
        proto = "udp" if kind == socket.SOCK_DGRAM else "tcp"
        reason = busy(host, port, kind)
        if reason:
            errors = True
            yield Finding(
                "error",
                key,
                f"cannot bind {host}:{port}/{proto}: {reason}"
                " (is callvault or another server already running?)",
            )
    taken = 0
    unbindable = busy(settings.media_address, 0, socket.SOCK_DGRAM)
    if unbindable:  # e.g. a public_address behind NAT: the receivers cannot bind it
        errors = True
        key = "public_address" if settings.public_address else "sip_host"
        yield Finding("error", key, f"RTP cannot bind {settings.media_address}: {unbindable}")
    elif high - low < MAX_PORTS_PROBED:
        for port in range(first, high + 1):
            if busy(settings.media_address, port, socket.SOCK_DGRAM):
                taken += 1
    if taken * 2 > high - first + 1:
        errors = True
        yield Finding(
            "error", "rtp_port_min", f"{taken} ports of the RTP range {low}-{high} are in use"
        )
    elif taken:
        yield Finding(
            "warning", "rtp_port_min", f"{taken} ports of the RTP range {low}-{high} are in use"
        )
    if not errors:
        yield Finding(
            "ok",
            "ports",
            f"SIP {settings.sip_port}, HTTP {settings.http_port} free; RTP {low}-{high}"
            f" ({pairs} port pairs)",
        )


def check_smtp(settings: Settings, timeout_s: float = 5.0) -> Iterator[Finding]:
    """The mail server answers EHLO (RFC 5321) within ``timeout_s``, over TLS from the
    first byte or after STARTTLS (RFC 3207) as ``smtp_security`` says, its certificate
    trusted the way ``mail.smtp.send`` trusts it."""
    if settings.smtp_host is None:
        yield Finding("skipped", "smtp", "no mail server set (smtp_host): nothing is mailed")
        return
    where = f"{settings.smtp_host}:{settings.smtp_port} ({settings.smtp_security})"
    host, port, security = settings.smtp_host, settings.smtp_port, settings.smtp_security
    try:
        context = ssl.create_default_context()
        smtp = (
            smtplib.SMTP_SSL(host, port, timeout=timeout_s, context=context)
            if security == "tls"
            else smtplib.SMTP(host, port, timeout=timeout_s)
        )
        with smtp:
            code, banner = smtp.ehlo()
            if code == 250 and security == "starttls":
                smtp.starttls(context=context)  # SMTPNotSupportedError when not offered
                code, banner = smtp.ehlo()
    except (OSError, smtplib.SMTPException) as exc:
        yield Finding("error", "smtp", f"cannot reach the mail server {where}: {exc}")
        return
    if code != 250:
        text = banner.decode(errors="replace")[:80]
        yield Finding("error", "smtp", f"the mail server {where} refused EHLO ({code} {text})")
    else:
        yield Finding("ok", "smtp", f"mail server {where} answers")


CHECKS: tuple[Callable[[Settings], Iterator[Finding]], ...] = (
    check_database,
    check_storage,
    check_certificates,
    check_ports,
    check_smtp,
)


def findings(settings: Settings) -> list[Finding]:
    out: list[Finding] = [Finding("ok", "settings", "valid")]
    for check in CHECKS:
        out.extend(check(settings))
    return out


def run_checks(settings: Settings, out: TextIO) -> int:
    """Print one line per finding; 1 when any is an error, else 0."""
    found = findings(settings)
    for finding in found:
        print(finding.line(), file=out)
    errors = sum(1 for f in found if f.level == "error")
    print(f"{errors} error(s)" if errors else "all checks passed", file=out)
    return 1 if errors else 0

"""Self-signed certificates for SIP-over-TLS tests, made with the openssl program."""

from __future__ import annotations

import hashlib
import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.peers import missing


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the DER certificate, lower-case hex: what the transport reports."""
        der = ssl.PEM_cert_to_DER_cert(self.cert.read_text())
        return hashlib.sha256(der).hexdigest()


def self_signed(directory: Path, name: str) -> Certificate:
    """An EC P-256 certificate for 127.0.0.1, valid two days."""
    openssl = shutil.which("openssl")
    if openssl is None:
        missing("openssl (test certificates for SIP over TLS)")
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
         "-subj", f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return Certificate(cert, key)


def client_context(server: Certificate, client: Certificate | None = None) -> ssl.SSLContext:
    """A TLS client trusting ``server``, presenting ``client`` when given."""
    context = ssl.create_default_context(cafile=str(server.cert))
    if client is not None:
        context.load_cert_chain(client.cert, client.key)
    return context

"""The server's VAPID key pair (RFC 8292), created once and shared by every process.

Browsers subscribe with the public key (``applicationServerKey``) and push
services then accept only messages signed by its private key, so every
portal and job process, on any host, must use the same pair: it is kept in
the database (``ServerSecret`` ``push.vapid``: the P-256 private scalar,
base64url), made by whichever process needs it first.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from callvault.db.models import ServerSecret

SECRET_NAME = "push.vapid"
SCALAR_BYTES = 32  # P-256


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """base64url with or without padding; raises ``ValueError`` on anything else."""
    if not text or any(c not in _B64URL for c in text.rstrip("=")):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4))


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True)
class VapidKey:
    private_key: ec.EllipticCurvePrivateKey

    @property
    def public_point(self) -> bytes:
        """The uncompressed P-256 point (65 bytes, 0x04 first), as browsers want it."""
        return self.private_key.public_key().public_bytes(
            Encoding.X962, PublicFormat.UncompressedPoint
        )

    @property
    def public_key_b64(self) -> str:
        """What ``pushManager.subscribe({applicationServerKey})`` is given."""
        return b64url(self.public_point)

    def scalar_b64(self) -> str:
        return b64url(
            self.private_key.private_numbers().private_value.to_bytes(SCALAR_BYTES, "big")
        )

    @classmethod
    def from_scalar_b64(cls, text: str) -> VapidKey:
        value = int.from_bytes(b64url_decode(text), "big")
        return cls(ec.derive_private_key(value, ec.SECP256R1()))

    @classmethod
    def generate(cls) -> VapidKey:
        return cls(ec.generate_private_key(ec.SECP256R1()))


def vapid_key(sessions: sessionmaker[Session], at: datetime) -> VapidKey:
    """The server's key pair; the first caller creates and commits it.

    Two processes that both find none both try to insert; the primary key
    lets one win, and the other reads the winner's key.
    """
    with sessions() as session:
        stored = session.get(ServerSecret, SECRET_NAME)
        if stored is not None:
            return VapidKey.from_scalar_b64(stored.value)
        key = VapidKey.generate()
        session.add(ServerSecret(name=SECRET_NAME, value=key.scalar_b64(), created_at=at))
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            winner = session.get(ServerSecret, SECRET_NAME, populate_existing=True)
            assert winner is not None  # the insert lost to it
            return VapidKey.from_scalar_b64(winner.value)
        return key

"""A push service for the tests (RFC 8030) on 127.0.0.1, the way a browser's vendor runs one.

It makes subscriptions as a browser would (``subscribe``: a P-256 key pair and
a 16-byte auth secret of its own, bound to the application server's VAPID
key), and accepts push messages at their endpoints only when they are what
RFC 8030/8291/8292 ask for: a ``TTL`` header, ``Content-Encoding:
aes128gcm``, and ``Authorization: vapid t=<JWT>, k=<key>`` where ``k`` is the
subscription's application server key, the JWT is ES256-signed by it, its
``aud`` is this service's origin and its ``exp`` lies within 24 hours. The
body is decrypted with the subscription's private key (RFC 8291, by
``http_ece``) and kept as ``received``.

A test can make an endpoint answer 404/410/500 (``answer``) or take the whole
service down and up again (``down``/``up``, same port). It runs its own
event loop in a thread, so synchronous senders (the job runner) reach it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import http_ece  # type: ignore[import-untyped]
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

VAPID_MAX_S = 24 * 3600  # RFC 8292 section 2


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Subscription:
    """What the browser holds (private key, auth) and what it hands to the server."""

    token: str
    endpoint: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    application_server_key: str  # base64url, as given to pushManager.subscribe
    answer: int = 201

    def as_json(self) -> dict[str, Any]:
        """``PushSubscription.toJSON()`` of a browser."""
        point = self.private_key.public_key().public_bytes(
            Encoding.X962, PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": self.endpoint,
            "keys": {"p256dh": b64url(point), "auth": b64url(self.auth)},
        }


@dataclass
class Received:
    token: str
    headers: dict[str, str]
    body: bytes  # as sent: encrypted
    payload: dict[str, Any]  # decrypted
    claims: dict[str, Any]  # the VAPID JWT's


@dataclass
class Refused:
    token: str
    status: int
    reason: str


@dataclass
class PushService:
    host: str = "127.0.0.1"
    port: int = 0
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    attempts: int = 0  # POSTs that reached us, whatever the answer

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._lock = threading.Lock()

    # -- the test's side ------------------------------------------------------------------
    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    def subscribe(self, application_server_key: str) -> Subscription:
        token = secrets.token_urlsafe(16)
        sub = Subscription(
            token=token,
            endpoint=f"{self.origin}/push/{token}",
            private_key=ec.generate_private_key(ec.SECP256R1()),
            auth=os.urandom(16),
            application_server_key=application_server_key,
        )
        self.subscriptions[token] = sub
        return sub

    def received_by(self, sub: Subscription) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.token == sub.token]

    def start(self) -> None:
        self._thread.start()
        self.up()

    def up(self) -> None:
        asyncio.run_coroutine_threadsafe(self._up(), self._loop).result(10)

    def down(self) -> None:
        asyncio.run_coroutine_threadsafe(self._down(), self._loop).result(10)

    def stop(self) -> None:
        self.down()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    # -- the server -----------------------------------------------------------------------
    async def _up(self) -> None:
        app = web.Application(client_max_size=8192)
        app.router.add_post("/push/{token}", self._push)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        if self.port == 0:  # the port the system bound
            addresses = self._runner.addresses
            assert addresses
            self.port = int(addresses[0][1])

    async def _down(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _refuse(self, token: str, status: int, reason: str) -> web.Response:
        with self._lock:
            self.refused.append(Refused(token, status, reason))
        return web.Response(status=status, text=reason)

    async def _push(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        body = await request.read()
        with self._lock:
            self.attempts += 1
        sub = self.subscriptions.get(token)
        if sub is None:
            return self._refuse(token, 404, "no such subscription")
        if sub.answer != 201:
            return self._refuse(token, sub.answer, "as the test asked")
        if not request.headers.get("TTL", "").isdigit():
            return self._refuse(token, 400, "TTL is required (RFC 8030 5.2)")
        if request.headers.get("Content-Encoding") != "aes128gcm":
            return self._refuse(token, 415, "aes128gcm expected (RFC 8291)")
        try:
            claims = self._check_vapid(request.headers.get("Authorization", ""), sub)
        except (ValueError, KeyError, InvalidSignature) as exc:
            return self._refuse(token, 403, f"VAPID: {exc!r}")
        try:
            plain = http_ece.decrypt(
                body, private_key=sub.private_key, auth_secret=sub.auth, version="aes128gcm"
            )
            payload = json.loads(plain)
        except Exception as exc:  # whatever fails, the message is refused
            return self._refuse(token, 400, f"cannot decrypt: {exc!r}")
        with self._lock:
            self.received.append(Received(token, dict(request.headers), body, payload, claims))
        return web.Response(
            status=201, headers={"Location": f"{self.origin}/message/{secrets.token_hex(8)}"}
        )

    def _check_vapid(self, header: str, sub: Subscription) -> dict[str, Any]:
        scheme, _, rest = header.partition(" ")
        if scheme.lower() != "vapid":
            raise ValueError(f"scheme {scheme!r}")
        params = dict(p.strip().split("=", 1) for p in rest.split(","))
        if params["k"] != sub.application_server_key:
            raise ValueError("k is not the subscription's application server key")
        head, claims_part, signature = params["t"].split(".")
        header_json = json.loads(unb64url(head))
        if header_json.get("alg") != "ES256":
            raise ValueError("alg must be ES256")
        raw = unb64url(signature)
        if len(raw) != 64:
            raise ValueError("ES256 signature must be 64 bytes")
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(params["k"]))
        public.verify(
            encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")),
            f"{head}.{claims_part}".encode(),
            ec.ECDSA(hashes.SHA256()),
        )
        claims: dict[str, Any] = json.loads(unb64url(claims_part))
        if claims.get("aud") != self.origin:
            raise ValueError(f"aud {claims.get('aud')!r} is not {self.origin}")
        left = int(claims["exp"]) - time.time()
        if not 0 < left <= VAPID_MAX_S:
            raise ValueError(f"exp is {left:.0f} s away")
        if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
            raise ValueError("sub must be a mailto: or https: contact")
        return claims


@contextmanager
def push_service() -> Iterator[PushService]:
    service = PushService()
    service.start()
    try:
        yield service
    finally:
        service.stop()


def browser_subscription(endpoint: str) -> dict[str, Any]:
    """``PushSubscription.toJSON()`` with fresh keys, for an endpoint nobody serves."""
    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    )
    return {"endpoint": endpoint, "keys": {"p256dh": b64url(point), "auth": b64url(os.urandom(16))}}

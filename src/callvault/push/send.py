"""Sending one Web Push message to one device.

The payload is encrypted to the subscription's keys (RFC 8291, content
encoding ``aes128gcm`` of RFC 8188, by ``http_ece`` with a fresh ECDH key
per message), the request carries the server's VAPID token (RFC 8292:
an ES256 JWT with ``aud`` = the push service's origin, ``exp`` 12 hours on,
``sub`` the operator's contact, by ``py_vapid``), and is POSTed to the
endpoint (RFC 8030 section 5) with a ``TTL``, ``Urgency`` and a timeout.
Redirects are not followed (an endpoint is checked before each send:
``push.endpoints``).

The answer decides what the caller does with the device (``Outcome``):
201/202 delivered; 404/410 the subscription is gone (delete it); 429, 5xx,
a timeout or no connection: try again later; anything else: refused for
good for this message.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import http_ece  # type: ignore[import-untyped]
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02  # type: ignore[import-untyped]

from callvault.push.endpoints import resolved_problem
from callvault.push.vapid import VapidKey, b64url_decode

VAPID_LIFETIME = timedelta(hours=12)  # RFC 8292 section 2: at most 24 hours
PAYLOAD_MAX = 3000  # RFC 8291 section 4: 4096 octets carry 3993 of plaintext; stay well inside
TTL_MAX = 28 * 86400  # push services keep messages at most about four weeks


class Outcome(enum.StrEnum):
    DELIVERED = "delivered"
    GONE = "gone"  # 404/410: the browser unsubscribed or the subscription expired
    RETRY = "retry"  # 429, 5xx, timeout, unreachable: the device is tried again later
    REFUSED = "refused"  # another answer: this message will not be accepted


@dataclass(frozen=True)
class Device:
    """Where one subscription's messages go and the keys they are encrypted to."""

    endpoint: str
    p256dh: str  # base64url, the browser's P-256 point
    auth: str  # base64url, 16 bytes


@dataclass(frozen=True)
class PushResult:
    outcome: Outcome
    status: int | None  # the push service's HTTP status; None when none answered
    detail: str
    retry_after: timedelta | None = None


def encrypt(payload: bytes, device: Device) -> bytes:
    """The request body: ``payload`` encrypted for ``device`` (RFC 8291, aes128gcm)."""
    body: bytes = http_ece.encrypt(
        payload,
        private_key=ec.generate_private_key(ec.SECP256R1()),  # one ECDH key per message
        dh=b64url_decode(device.p256dh),
        auth_secret=b64url_decode(device.auth),
        version="aes128gcm",
    )
    return body


def vapid_authorization(key: VapidKey, endpoint: str, subject: str, now: datetime) -> str:
    """``vapid t=<JWT>, k=<public key>`` for the endpoint's push service (RFC 8292 section 3)."""
    parts = urlsplit(endpoint)
    claims = {
        "aud": f"{parts.scheme}://{parts.netloc}",
        "exp": int((now + VAPID_LIFETIME).timestamp()),
        "sub": subject,
    }
    headers: dict[str, Any] = Vapid02(private_key=key.private_key).sign(claims)
    return str(headers["Authorization"])


def _retry_after(response: requests.Response) -> timedelta | None:
    value = response.headers.get("Retry-After", "")
    if value.isdigit():
        return timedelta(seconds=min(int(value), 86400))
    return None


def classify(response: requests.Response) -> PushResult:
    status = response.status_code
    if status in (200, 201, 202):
        return PushResult(Outcome.DELIVERED, status, "delivered")
    if status in (404, 410):
        return PushResult(Outcome.GONE, status, f"{status}: the subscription is gone")
    if status == 429 or status >= 500:
        return PushResult(Outcome.RETRY, status, f"{status}: try later", _retry_after(response))
    return PushResult(Outcome.REFUSED, status, f"{status}: {response.text[:200]}")


def send_push(
    device: Device,
    message: dict[str, Any],
    *,
    key: VapidKey,
    subject: str,
    now: datetime,
    ttl: int,
    timeout: float,
    urgency: str = "normal",
    allow_http_loopback: bool = False,
) -> PushResult:
    """Encrypt ``message`` (JSON) for ``device`` and POST it; never raises for the network."""
    payload = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
    if len(payload) > PAYLOAD_MAX:
        raise ValueError(f"push payload of {len(payload)} bytes is over {PAYLOAD_MAX}")
    try:
        problem = resolved_problem(device.endpoint, allow_http_loopback=allow_http_loopback)
    except OSError as exc:  # the name does not resolve now
        return PushResult(Outcome.RETRY, None, f"cannot resolve the endpoint's host: {exc}")
    if problem is not None:
        return PushResult(Outcome.REFUSED, None, problem)
    try:
        body = encrypt(payload, device)
    except ValueError as exc:  # keys that are not a P-256 point and a secret
        return PushResult(Outcome.REFUSED, None, f"the subscription's keys are not usable: {exc}")
    headers = {
        "TTL": str(max(0, min(ttl, TTL_MAX))),
        "Urgency": urgency,
        "Content-Encoding": "aes128gcm",
        "Content-Type": "application/octet-stream",
        "Authorization": vapid_authorization(key, device.endpoint, subject, now),
    }
    try:
        response = requests.post(
            device.endpoint, data=body, headers=headers, timeout=timeout, allow_redirects=False
        )
    except requests.RequestException as exc:
        return PushResult(Outcome.RETRY, None, f"no answer from the push service: {exc}")
    with response:
        return classify(response)

"""Which push endpoints callvault will POST to (RFC 8030 section 5).

An endpoint is a URL the browser's push service hands out, and the server
later POSTs to it: left unchecked it would let any user make the server
send requests into its own network. So an endpoint must be ``https`` to a
public host: no user-info, no private, loopback or link-local address,
checked when it is stored (the URL's own address) and again before each
send (what the name resolves to). ``push_allow_http_loopback`` (tests only)
also admits ``http``/``https`` on a loopback address.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

ENDPOINT_MAX = 1000  # PushSubscription.endpoint's column
_LOCAL_NAMES = ("localhost", "localhost.", "localhost.localdomain")


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _allowed(address: ipaddress.IPv4Address | ipaddress.IPv6Address, loopback_ok: bool) -> bool:
    if address.is_loopback:
        return loopback_ok
    return address.is_global and not address.is_multicast


def endpoint_problem(url: str, *, allow_http_loopback: bool = False) -> str | None:
    """Why ``url`` may not be a push endpoint, or None when it may."""
    if len(url) > ENDPOINT_MAX:
        return f"the endpoint is longer than {ENDPOINT_MAX} characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "the endpoint is not a URL"
    host = (parts.hostname or "").lower()
    if not host or parts.username is not None or parts.password is not None or parts.fragment:
        return "the endpoint must be an https URL with a host (no user or fragment)"
    if port == 0:
        return "the endpoint's port is not valid"
    address = _address(host)
    loopback = (address is not None and address.is_loopback) or host in _LOCAL_NAMES
    if parts.scheme != "https" and not (
        parts.scheme == "http" and allow_http_loopback and loopback
    ):
        return "the endpoint must be an https URL"
    if host in _LOCAL_NAMES or host.endswith(".localhost"):
        return None if allow_http_loopback else "the endpoint's host is not a public host"
    if address is not None and not _allowed(address, allow_http_loopback):
        return "the endpoint's address is not a public address"
    return None


def resolved_problem(url: str, *, allow_http_loopback: bool = False) -> str | None:
    """Like ``endpoint_problem``, and every address the host resolves to must be public.

    Raises ``OSError`` when the name cannot be resolved now (try again later).
    """
    problem = endpoint_problem(url, allow_http_loopback=allow_http_loopback)
    if problem is not None:
        return problem
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    for *_rest, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = _address(str(sockaddr[0]).split("%", 1)[0])
        if address is None or not _allowed(address, allow_http_loopback):
            return f"the endpoint's host resolves to a non-public address ({sockaddr[0]})"
    return None

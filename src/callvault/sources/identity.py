"""How a recording source is recognised: its networks and its TLS certificate.

Networks are CIDRs as ``ipaddress`` reads them (a bare address is a /32 or
/128); certificates are named by the SHA-256 of their DER form, stored as 64
lower-case hex digits. Input may use the colon form that ``openssl x509
-fingerprint -sha256`` prints. Errors are ``InvalidInput`` with a stable id,
so the REST API and the CLI report the same thing.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from callvault.errors import ErrorId, InvalidInput

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_HEX64 = re.compile(r"[0-9a-f]{64}")
_COLON_HEX = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){31}")
_MAX_TEXT = 100


def parse_network(text: str) -> IpNetwork:
    """One CIDR (or bare address); refuses host bits, /0 and IPv4-mapped IPv6."""
    value = text.strip()
    if not value or len(value) > _MAX_TEXT:
        raise InvalidInput(
            f"{text[:_MAX_TEXT]!r} is not an address or CIDR",
            error_id=ErrorId.SOURCE_NETWORK_INVALID,
        )
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError:
        try:
            loose = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise InvalidInput(
                f"{value!r} is not an address or CIDR", error_id=ErrorId.SOURCE_NETWORK_INVALID
            ) from None
        raise InvalidInput(
            f"{value!r} has host bits set; the network is {loose}",
            error_id=ErrorId.SOURCE_NETWORK_INVALID,
        ) from None
    if network.prefixlen == 0:
        # a source that is everybody is no registration at all
        raise InvalidInput(
            f"{value!r} matches every address; name the source's own addresses,"
            " or register its certificate alone",
            error_id=ErrorId.SOURCE_NETWORK_INVALID,
        )
    if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped:
        # addresses are compared in IPv4 form (see normalise_address)
        raise InvalidInput(
            f"{value!r} is IPv4-mapped; write it as an IPv4 network",
            error_id=ErrorId.SOURCE_NETWORK_INVALID,
        )
    return network


def normalise_networks(values: Iterable[str]) -> list[str]:
    """Parsed, in canonical text form, without repeats (a repeat is an error)."""
    out: list[str] = []
    for value in values:
        network = str(parse_network(value))
        if network in out:
            raise InvalidInput(
                f"the network {network} repeats", error_id=ErrorId.SOURCE_NETWORK_INVALID
            )
        out.append(network)
    return out


def parse_fingerprint(text: str) -> str:
    """64 lower-case hex digits from the plain or the colon form."""
    value = text.strip().lower()
    if _HEX64.fullmatch(value):
        return value
    if _COLON_HEX.fullmatch(value):
        return value.replace(":", "")
    raise InvalidInput(
        f"{text[:_MAX_TEXT]!r} is not a SHA-256 certificate fingerprint"
        " (64 hex digits, with or without colons)",
        error_id=ErrorId.SOURCE_FINGERPRINT_INVALID,
    )


def normalise_fingerprints(values: Iterable[str]) -> list[str]:
    out: list[str] = []
    for value in values:
        fingerprint = parse_fingerprint(value)
        if fingerprint in out:
            raise InvalidInput(
                f"the fingerprint {fingerprint} repeats",
                error_id=ErrorId.SOURCE_FINGERPRINT_INVALID,
            )
        out.append(fingerprint)
    return out


def normalise_address(text: str) -> IpAddress | None:
    """The peer's address as SIP transports report it; None when it is not one.

    Brackets and an IPv6 zone are dropped, and an IPv4-mapped IPv6 address
    (a dual-stack socket) becomes the IPv4 address it carries.
    """
    value = text.strip()
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    value = value.split("%", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address

"""Call routes: where the B2BUA sends a call from a PBX or trunk (SPEC section 2, mode 2).

The operator sets, per tenant, routes from a source of kind ``pbx`` or
``trunk`` to the call's other leg: ``(source, prefix) -> target``. A new
INVITE from that source goes to the target of the source's route with the
longest prefix of the called number; the prefix ``""`` matches any call.

``RouteTable`` is an immutable snapshot built with ``load`` and rebuilt when
the operator changes routes or sources (the application's
``reload_directory``), like ``SourceRegistry``. A route whose source is no
longer a B2BUA leg, or may no longer record for the route's tenant, is left
out of the snapshot: it stays listed, and works again once the source does.

``parse_target`` reads the target as the operator writes it,
``sip:HOST[:PORT][;transport=udp|tcp|tls]`` (RFC 3261 section 19.1.1; the
default port is 5060, 5061 for TLS); validation and storage are in
``route_store.py``.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from callvault.db.models import CallRoute, RecordingSourceRow, RecordingSourceTenant
from callvault.sources.registry import B2BUA_KINDS

log = logging.getLogger(__name__)

Transport = Literal["udp", "tcp", "tls"]
TRANSPORTS: Final = ("udp", "tcp", "tls")
MAX_TARGET = 255  # call_routes.target
MAX_PREFIX = 32  # call_routes.prefix
_DEFAULT_PORT: Final[dict[str, int]] = {"udp": 5060, "tcp": 5060, "tls": 5061}
# RFC 1123 host names: labels of letters, digits and inner hyphens, at most 63 each
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_PORT = re.compile(r"[0-9]{1,5}")


class InvalidRouteTarget(ValueError):
    """The target is not ``sip:HOST[:PORT][;transport=udp|tcp|tls]``; the message says why."""


@dataclass(frozen=True)
class RouteTarget:
    """The other leg's next hop: where the B2BUA sends the call's INVITE."""

    host: str  # an IP literal (IPv6 without brackets) or a DNS name, lower case
    port: int
    transport: Transport

    @property
    def text(self) -> str:
        """The canonical form, as stored and shown: ``sip:host:port;transport=t``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"sip:{host}:{self.port};transport={self.transport}"

    def __str__(self) -> str:
        return self.text


def _host(text: str) -> str:
    if text.startswith("["):
        if not text.endswith("]"):
            raise InvalidRouteTarget(f"unclosed IPv6 bracket in {text!r}")
        try:
            return str(ipaddress.IPv6Address(text[1:-1]))
        except ValueError:
            raise InvalidRouteTarget(f"{text!r} is not an IPv6 address") from None
    if not text:
        raise InvalidRouteTarget("the target has no host")
    if re.fullmatch(r"[0-9.]+", text):
        try:
            return str(ipaddress.IPv4Address(text))
        except ValueError:
            raise InvalidRouteTarget(f"{text!r} is not an IPv4 address") from None
    labels = text.rstrip(".").split(".")
    if len(text) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise InvalidRouteTarget(f"{text!r} is not an IP address or a DNS name")
    return text.rstrip(".").lower()


def _split_host_port(hostport: str) -> tuple[str, str | None]:
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise InvalidRouteTarget(f"unclosed IPv6 bracket in {hostport!r}")
        rest = hostport[end + 1 :]
        if rest and not rest.startswith(":"):
            raise InvalidRouteTarget(f"unexpected {rest!r} after the IPv6 address")
        return hostport[: end + 1], rest[1:] if rest else None
    if hostport.count(":") > 1:
        raise InvalidRouteTarget("an IPv6 address is written in brackets: sip:[2001:db8::1]")
    host, sep, port = hostport.partition(":")
    return host, port if sep else None


def parse_target(text: str) -> RouteTarget:
    """Read ``sip:HOST[:PORT][;transport=udp|tcp|tls]``; raise ``InvalidRouteTarget``.

    The scheme and parameter names are case-insensitive. No user part, no
    parameter other than ``transport``, no headers: the B2BUA keeps the
    call's own Request-URI and only sends it to this hop.
    """
    if len(text) > MAX_TARGET:
        raise InvalidRouteTarget(f"a target has at most {MAX_TARGET} characters")
    value = text.strip()
    scheme, colon, rest = value.partition(":")
    if not colon or scheme.lower() != "sip":
        raise InvalidRouteTarget(f"a target starts with sip:, not {value[:12]!r}")
    if "@" in rest:
        raise InvalidRouteTarget("a target has no user part: the call keeps its Request-URI")
    if "?" in rest:
        raise InvalidRouteTarget("a target has no headers")
    hostport, *params = rest.split(";")
    transport: Transport = "udp"
    seen: set[str] = set()
    for param in params:
        name, _, param_value = param.partition("=")
        name = name.strip().lower()
        if name != "transport":
            raise InvalidRouteTarget(f"unknown target parameter {name[:20]!r}; only transport=")
        if name in seen:
            raise InvalidRouteTarget("transport= is given twice")
        seen.add(name)
        wanted = param_value.strip().lower()
        if wanted not in TRANSPORTS:
            raise InvalidRouteTarget(f"transport is udp, tcp or tls, not {param_value[:10]!r}")
        transport = cast(Transport, wanted)
    host_text, port_text = _split_host_port(hostport.strip())
    host = _host(host_text)
    if port_text is None:
        port = _DEFAULT_PORT[transport]
    elif not _PORT.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
        raise InvalidRouteTarget(f"port {port_text[:10]!r} is not 1 to 65535")
    else:
        port = int(port_text)
    return RouteTarget(host, port, transport)


@dataclass(frozen=True)
class Route:
    """One operator's route: calls of ``source_id`` matching ``prefix`` go to ``target``."""

    id: int
    tenant_id: int
    source_id: int
    prefix: str
    target: RouteTarget

    def matches(self, number: str | None, user_part: str) -> bool:
        return (number if number is not None else user_part).startswith(self.prefix)


class RouteTable:
    """An immutable snapshot of the call routes, per source by prefix."""

    def __init__(self, routes: Iterable[Route] = ()) -> None:
        self._routes: tuple[Route, ...] = tuple(routes)
        self._by_source: dict[int, dict[str, Route]] = {}
        for route in self._routes:
            self._by_source.setdefault(route.source_id, {})[route.prefix] = route
        # per source, its prefix lengths, longest first: a look-up is one dict hit per length
        self._lengths: dict[int, tuple[int, ...]] = {
            source_id: tuple(sorted({len(prefix) for prefix in by_prefix}, reverse=True))
            for source_id, by_prefix in self._by_source.items()
        }

    @classmethod
    def load(cls, session: Session) -> RouteTable:
        """The routes whose source is a B2BUA leg allowed to record for the route's tenant."""
        rows = session.execute(
            select(CallRoute)
            .join(RecordingSourceRow, RecordingSourceRow.id == CallRoute.source_id)
            .join(
                RecordingSourceTenant,
                (RecordingSourceTenant.source_id == CallRoute.source_id)
                & (RecordingSourceTenant.tenant_id == CallRoute.tenant_id),
            )
            .where(RecordingSourceRow.kind.in_(sorted(B2BUA_KINDS)))
            .order_by(CallRoute.id)
        ).scalars()
        routes = []
        for row in rows:
            try:
                target = parse_target(row.target)
            except InvalidRouteTarget as exc:  # stored before a stricter check: skip, say so
                log.warning("call route %d left out: %s", row.id, exc)
                continue
            routes.append(Route(row.id, row.tenant_id, row.source_id, row.prefix, target))
        return cls(routes)

    @property
    def routes(self) -> tuple[Route, ...]:
        return self._routes

    def __len__(self) -> int:
        return len(self._routes)

    def lookup(self, source_id: int, number: str | None, user_part: str) -> Route | None:
        """The source's route with the longest prefix of the called party, or None.

        ``number`` is the Request-URI's number in E.164 (``+31201234567``) when
        the directory could read one; the prefix is then compared with it, so
        routes by number are written with ``+``. Without a number the raw
        Request-URI user part is compared (extensions, ``*`` codes).
        """
        by_prefix = self._by_source.get(source_id)
        if by_prefix is None:
            return None
        called = number if number is not None else user_part
        for length in self._lengths[source_id]:
            if length <= len(called):
                found = by_prefix.get(called[:length])
                if found is not None:
                    return found
        return None

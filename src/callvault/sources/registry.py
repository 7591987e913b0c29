"""Which recording source sent this request, and what it may do (SPEC section 2).

``SourceRegistry`` is an immutable snapshot of the registered sources, built
from the database with ``load`` and rebuilt when the operator changes them.
The SIP side asks ``identify(address, tls_fingerprint)`` for every request:

- a source matches when every criterion it configures matches: the address
  lies in one of its networks (if it has networks) and the client
  certificate's fingerprint is one of its fingerprints (if it has any);
- on overlap the most specific source wins: one that checked the
  certificate before one that did not, then the longest matching prefix,
  then the lowest id (so the answer never depends on load order).

A look-up masks the address once per distinct prefix length in use (a dict
hit each) and its answer is cached by (address, fingerprint), bounded, so a
flood from one address costs one dict look-up per request.

A source's ``kind`` says which mode it speaks (SPEC section 2): ``siprec``
forks media to the recording server; ``pbx`` and ``trunk`` are the two legs
of the in-path B2BUA, routed to each other by ``b2bua/routes.py``.

``SourceUsage`` counts one source's live calls and open media lines against
its ``SourceLimits``; ``SourceUsages`` keeps one per source across reloads.
They are pure and synchronous: the caller opens and releases.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from callvault.db.models import RecordingSourceRow
from callvault.errors import LocalProtocolError
from callvault.sources.identity import IpAddress, IpNetwork, normalise_address
from callvault.sources.limits import LIMIT_BOUNDS as LIMIT_BOUNDS
from callvault.sources.limits import SourceLimits as SourceLimits

_CACHE_SIZE = 4096
SOURCE_KINDS: Final = ("siprec", "pbx", "trunk")
B2BUA_KINDS: Final = frozenset({"pbx", "trunk"})  # the legs of SPEC section 2, mode 2


@dataclass(frozen=True)
class RecordingSource:
    id: int
    name: str
    networks: tuple[IpNetwork, ...]
    fingerprints: frozenset[str]  # lower-case hex SHA-256 of the DER certificate
    tenant_ids: frozenset[int]
    require_tls: bool = False
    require_srtp: bool = False
    limits: SourceLimits = field(default_factory=SourceLimits)
    kind: str = "siprec"  # one of SOURCE_KINDS

    @property
    def is_b2bua_leg(self) -> bool:
        """A PBX or trunk whose calls the B2BUA relays (not a SIPREC client)."""
        return self.kind in B2BUA_KINDS

    def may_record_for(self, tenant_id: int) -> bool:
        return tenant_id in self.tenant_ids


def source_from_row(row: RecordingSourceRow) -> RecordingSource:
    return RecordingSource(
        id=row.id,
        name=row.name,
        networks=tuple(ipaddress.ip_network(n) for n in row.networks),
        fingerprints=frozenset(row.fingerprints),
        tenant_ids=frozenset(link.tenant_id for link in row.tenants),
        require_tls=row.require_tls,
        require_srtp=row.require_srtp,
        limits=SourceLimits(
            max_calls=row.max_calls,
            max_streams=row.max_streams,
            max_media_lines=row.max_media_lines,
            max_session_expires_s=row.max_session_expires_s,
        ),
        kind=row.kind,
    )


# (checked the certificate, prefix length or -1, -id): larger is more specific
_Rank = tuple[bool, int, int]


class SourceRegistry:
    def __init__(self, sources: Iterable[RecordingSource] = ()) -> None:
        self._sources: dict[int, RecordingSource] = {s.id: s for s in sources}
        # per IP version: (prefix length, {masked address: sources}), longest first
        self._prefixes: dict[int, list[tuple[int, dict[int, list[RecordingSource]]]]] = {}
        # sources configured by certificate alone
        self._by_fingerprint: dict[str, list[RecordingSource]] = {}
        tables: dict[tuple[int, int], dict[int, list[RecordingSource]]] = {}
        for source in self._sources.values():
            if not source.networks:
                for fingerprint in source.fingerprints:
                    self._by_fingerprint.setdefault(fingerprint, []).append(source)
            for network in source.networks:
                table = tables.setdefault((network.version, network.prefixlen), {})
                table.setdefault(int(network.network_address), []).append(source)
        for (version, prefixlen), table in sorted(tables.items(), key=lambda kv: -kv[0][1]):
            self._prefixes.setdefault(version, []).append((prefixlen, table))
        self._cache: dict[tuple[str, str | None], RecordingSource | None] = {}

    @classmethod
    def load(cls, session: Session) -> SourceRegistry:
        rows = session.scalars(
            select(RecordingSourceRow).options(selectinload(RecordingSourceRow.tenants))
        )
        return cls(source_from_row(row) for row in rows)

    @property
    def sources(self) -> tuple[RecordingSource, ...]:
        return tuple(self._sources.values())

    def get(self, source_id: int) -> RecordingSource | None:
        return self._sources.get(source_id)

    def __len__(self) -> int:
        return len(self._sources)

    def identify(self, address: str, tls_fingerprint: str | None) -> RecordingSource | None:
        """The source this request comes from, or None: refuse it.

        ``address`` is the peer's IP as the transport reports it;
        ``tls_fingerprint`` the SHA-256 of the client certificate's DER form
        (hex, either case, colons allowed), None without TLS or certificate.
        """
        key = (address, tls_fingerprint)
        try:
            return self._cache[key]
        except KeyError:
            pass
        fingerprint = _fingerprint_key(tls_fingerprint)
        ip = normalise_address(address)
        found = self._match(ip, fingerprint) if ip is not None else None
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()  # bounded: a spray of addresses cannot grow it
        self._cache[key] = found
        return found

    def _match(self, ip: IpAddress, fingerprint: str | None) -> RecordingSource | None:
        best: RecordingSource | None = None
        best_rank: _Rank | None = None
        value = int(ip)
        for prefixlen, table in self._prefixes.get(ip.version, ()):
            masked = (value >> (ip.max_prefixlen - prefixlen)) << (ip.max_prefixlen - prefixlen)
            for source in table.get(masked, ()):
                if source.fingerprints and fingerprint not in source.fingerprints:
                    continue
                rank = (bool(source.fingerprints), prefixlen, -source.id)
                if best_rank is None or rank > best_rank:
                    best, best_rank = source, rank
        if fingerprint is not None:
            for source in self._by_fingerprint.get(fingerprint, ()):
                rank = (True, -1, -source.id)
                if best_rank is None or rank > best_rank:
                    best, best_rank = source, rank
        return best


def _fingerprint_key(fingerprint: str | None) -> str | None:
    if not fingerprint:
        return None
    return fingerprint.strip().lower().replace(":", "")


@dataclass
class SourceUsage:
    """One source's live calls and open media lines, against its limits."""

    limits: SourceLimits
    calls: int = 0
    streams: int = 0

    def try_open_call(self) -> bool:
        if self.calls >= self.limits.max_calls:
            return False
        self.calls += 1
        return True

    def release_call(self) -> None:
        if self.calls <= 0:
            raise LocalProtocolError("released a call that was not open")
        self.calls -= 1

    def try_open_streams(self, n: int) -> bool:
        """Open ``n`` more media lines, all or none."""
        if n < 0:
            raise LocalProtocolError(f"cannot open {n} streams")
        if self.streams + n > self.limits.max_streams:
            return False
        self.streams += n
        return True

    def release_streams(self, n: int) -> None:
        if n < 0 or n > self.streams:
            raise LocalProtocolError(f"released {n} streams of {self.streams} open")
        self.streams -= n


class SourceUsages:
    """One ``SourceUsage`` per source id; counts survive a registry reload.

    ``usage(source)`` hands the source's counter with the source's current
    limits: lowered limits refuse new calls and leave open ones alone.
    """

    def __init__(self) -> None:
        self._by_id: dict[int, SourceUsage] = {}

    def usage(self, source: RecordingSource) -> SourceUsage:
        found = self._by_id.get(source.id)
        if found is None:
            found = self._by_id[source.id] = SourceUsage(source.limits)
        elif found.limits != source.limits:
            found.limits = source.limits
        return found

    def totals(self) -> dict[int, tuple[int, int]]:
        """{source id: (calls, streams)} for metrics and the operator."""
        return {sid: (u.calls, u.streams) for sid, u in self._by_id.items()}

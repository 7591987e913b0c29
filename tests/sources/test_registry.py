"""Which registered source a SIP request comes from (callvault.sources.registry)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from sqlalchemy import delete

from callvault.admin import create_tenant
from callvault.db.engine import make_engine, make_sessionmaker, migrate
from callvault.db.models import Tenant
from callvault.sources.registry import RecordingSource, SourceLimits, SourceRegistry
from callvault.sources.store import SourceSpec, add_source, register_loopback_source

FP_A = "ab" * 32
FP_B = "cd" * 32


def source(
    id: int, *networks: str, fingerprints: tuple[str, ...] = (), tenants: tuple[int, ...] = (1,)
) -> RecordingSource:
    return RecordingSource(
        id=id,
        name=f"src{id}",
        networks=tuple(ipaddress.ip_network(n) for n in networks),
        fingerprints=frozenset(fingerprints),
        tenant_ids=frozenset(tenants),
    )


def ids(registry: SourceRegistry, address: str, fingerprint: str | None = None) -> int | None:
    found = registry.identify(address, fingerprint)
    return None if found is None else found.id


def test_address_in_a_network_and_the_most_specific_wins() -> None:
    registry = SourceRegistry(
        [source(1, "10.0.0.0/8"), source(2, "10.1.0.0/16", "192.0.2.7/32"), source(3, "10.1.2.3")]
    )
    assert ids(registry, "10.9.9.9") == 1
    assert ids(registry, "10.1.9.9") == 2
    assert ids(registry, "10.1.2.3") == 3
    assert ids(registry, "192.0.2.7") == 2
    assert ids(registry, "192.0.2.8") is None
    assert ids(registry, "11.0.0.1") is None
    # the same answer from the cache, and for an address that is no address
    assert ids(registry, "10.1.2.3") == 3
    assert ids(registry, "not-an-address") is None
    assert ids(registry, "") is None


def test_ipv6_and_dual_stack_forms() -> None:
    registry = SourceRegistry(
        [source(1, "2001:db8::/32"), source(2, "2001:db8:1::/48"), source(3, "127.0.0.1/32", "::1")]
    )
    assert ids(registry, "2001:db8:ffff::1") == 1
    assert ids(registry, "2001:db8:1::5") == 2
    assert ids(registry, "[2001:db8:1::5]") == 2
    assert ids(registry, "2001:db8:1::5%eth0") == 2
    assert ids(registry, "2001:db9::1") is None
    assert ids(registry, "::1") == 3
    assert ids(registry, "127.0.0.1") == 3
    # an IPv4 peer on a dual-stack socket is reported IPv4-mapped
    assert ids(registry, "::ffff:127.0.0.1") == 3
    assert ids(registry, "::ffff:127.0.0.2") is None
    # an IPv4 network never matches an IPv6 address with the same integer value
    assert ids(registry, "::7f00:1") is None


def test_certificate_alone_and_in_any_case_or_colon_form() -> None:
    registry = SourceRegistry([source(1, fingerprints=(FP_A,))])
    colons = ":".join(FP_A[i : i + 2] for i in range(0, 64, 2)).upper()
    assert ids(registry, "198.51.100.1", FP_A) == 1
    assert ids(registry, "2001:db8::1", colons) == 1
    assert ids(registry, "198.51.100.1", FP_B) is None
    assert ids(registry, "198.51.100.1", None) is None
    assert ids(registry, "198.51.100.1", "") is None


def test_every_configured_criterion_must_match() -> None:
    registry = SourceRegistry([source(1, "10.0.0.0/24", fingerprints=(FP_A, FP_B))])
    assert ids(registry, "10.0.0.5", FP_A) == 1
    assert ids(registry, "10.0.0.5", FP_B) == 1
    assert ids(registry, "10.0.0.5", None) is None  # the right address without its certificate
    assert ids(registry, "10.0.1.5", FP_A) is None  # the certificate from elsewhere
    assert ids(registry, "10.0.0.5", "ef" * 32) is None


def test_on_overlap_the_certificate_outranks_the_address_then_the_prefix() -> None:
    registry = SourceRegistry(
        [
            source(1, "10.0.0.7/32"),  # by address only, the narrowest
            source(2, fingerprints=(FP_A,)),  # by certificate only
            source(3, "10.0.0.0/8", fingerprints=(FP_A,)),  # both
            source(4, "10.0.0.0/8"),
            source(5, "10.0.0.0/8"),  # the same as 4: the lower id wins
        ]
    )
    assert ids(registry, "10.0.0.7", FP_A) == 3
    assert ids(registry, "172.16.0.1", FP_A) == 2
    assert ids(registry, "10.0.0.7", None) == 1
    assert ids(registry, "10.0.0.7", FP_B) == 1
    assert ids(registry, "10.0.0.8", None) == 4
    reversed_order = SourceRegistry(reversed(registry.sources))
    assert ids(reversed_order, "10.0.0.8", None) == 4


def test_the_cache_is_bounded_and_answers_stay_right() -> None:
    registry = SourceRegistry([source(1, "10.0.0.0/16")])
    for n in range(10_000):
        address = f"10.{n // 256 % 4}.{n % 256}.1"
        assert ids(registry, address) == (1 if n // 256 % 4 == 0 else None)
    assert len(registry._cache) <= 4096


def test_limits_clamp_session_expires_and_media_lines() -> None:
    limits = SourceLimits(max_media_lines=2, max_session_expires_s=1800)
    assert limits.session_expires(None) == 1800
    assert limits.session_expires(90) == 90
    assert limits.session_expires(86400) == 1800
    assert limits.session_expires(0) == 1800
    assert limits.media_lines_allowed(2) and not limits.media_lines_allowed(3)
    assert SourceLimits() == SourceLimits(200, 400, 4, 3600)


def test_load_from_the_database_and_a_deleted_tenant_is_dropped(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        a = create_tenant(session, "A", ["a.example"], [])
        b = create_tenant(session, "B", ["b.example"], [])
        register_loopback_source(session, [a.id, b.id])
        add_source(
            session,
            SourceSpec(
                name="sbc",
                networks=["192.0.2.0/24"],
                fingerprints=[FP_A.upper()],
                tenant_ids=[b.id],
                require_tls=True,
                limits=SourceLimits(max_calls=5, max_media_lines=2),
            ),
            created_by="test",
        )
        session.commit()
        a_id, b_id = a.id, b.id
        registry = SourceRegistry.load(session)
    loopback = registry.identify("127.0.0.1", None)
    assert loopback is not None and loopback.tenant_ids == {a_id, b_id}
    assert registry.identify("::1", None) == loopback
    assert loopback.may_record_for(a_id) and not loopback.may_record_for(b_id + 1)
    sbc = registry.identify("192.0.2.9", FP_A)
    assert sbc is not None and sbc.name == "sbc" and sbc.require_tls and not sbc.require_srtp
    assert sbc.limits == SourceLimits(max_calls=5, max_media_lines=2)
    assert sbc.fingerprints == {FP_A}
    assert len(registry) == 2 and registry.get(sbc.id) == sbc
    with sessions() as session:
        session.execute(delete(Tenant).where(Tenant.id == a_id))
        session.commit()
        reloaded = SourceRegistry.load(session)
    loopback = reloaded.identify("127.0.0.1", None)
    assert loopback is not None and loopback.tenant_ids == {b_id}
    engine.dispose()


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
def test_loopback_registration_covers_both_families(tmp_path: Path, address: str) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        tenant = create_tenant(session, "A", ["a.example"], [])
        register_loopback_source(session, [tenant.id])
        session.commit()
        assert SourceRegistry.load(session).identify(address, None) is not None
    engine.dispose()

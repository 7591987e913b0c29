"""A running callvault in B2BUA mode for the real-peer tests (SPEC section 2, mode 2).

Wraps ``tests/e2e/harness.py`` ``running_recorder`` (same tenant Acme, same
users, same loopback SIPREC source 127.0.0.1) and adds, before the first
call, what the B2BUA needs:

- one recording source per leg, of kind ``pbx`` or ``trunk``, identified by
  the leg's own loopback address as a /32 (the phones and sipp bind
  127.0.0.2, 127.0.0.3, ...; the SIPREC source stays 127.0.0.1/32, so the
  most specific network tells them apart);
- the leg's call routes (``CallRoute``: prefix → target URI);
- the tenant's B2BUA options (``announce_start``, ``hide_code_from_other``, ...).

The directory (users, sources) is reloaded once the rows are in.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callvault.db.engine import make_engine, make_sessionmaker
from callvault.db.models import CallRoute, RecordingSourceRow, Tenant
from callvault.sources.store import SourceSpec, add_source
from tests.e2e.harness import Recorder, running_recorder

PBX_ADDRESS = "127.0.0.2"  # phone A: the recorded user's PBX side
TRUNK_ADDRESS = "127.0.0.3"  # phone B: the carrier's side
THIRD_ADDRESS = "127.0.0.5"  # phone C: a transfer target behind the trunk
SIPP_PBX_ADDRESS = "127.0.0.4"  # sipp as the PBX
SIPP_TRUNK_ADDRESS = "127.0.0.6"  # sipp as the carrier
STRANGER_ADDRESS = "127.0.0.9"  # registered nowhere


@dataclass(frozen=True)
class Leg:
    """A PBX or trunk on its own loopback address, with where its calls go.

    ``routes`` maps a prefix of the Request-URI's user part ("" matches any)
    to a target such as ``sip:127.0.0.3:5060;transport=udp``.
    """

    name: str
    kind: str  # "pbx" or "trunk"
    address: str
    routes: Mapping[str, str] = field(default_factory=dict)


@dataclass
class B2bua:
    rec: Recorder
    sources: dict[str, int]  # leg name → source id

    @property
    def sip(self) -> tuple[str, int]:
        return self.rec.sip

    def uri(self, user: str) -> str:
        """What a leg dials to reach ``user`` through callvault."""
        host, port = self.rec.sip
        return f"sip:{user}@{host}:{port}"

    async def recordings(self) -> list[dict]:  # type: ignore[type-arg]
        r = await self.rec.http.get("/api/v1/recordings")
        r.raise_for_status()
        body = r.json()
        return list(body["items"] if isinstance(body, dict) else body)


def seed_legs(
    url: str, tenant_id: int, legs: list[Leg], tenant_options: Mapping[str, object]
) -> dict[str, int]:
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    ids: dict[str, int] = {}
    with sessions() as session:
        tenant = session.get(Tenant, tenant_id)
        assert tenant is not None
        for key, value in tenant_options.items():
            assert hasattr(tenant, key), key
            setattr(tenant, key, value)
        for leg in legs:
            row: RecordingSourceRow = add_source(
                session,
                SourceSpec(name=leg.name, networks=[f"{leg.address}/32"], tenant_ids=[tenant_id]),
                created_by="tests",
            )
            row.kind = leg.kind
            for prefix, target in leg.routes.items():
                session.add(
                    CallRoute(
                        tenant_id=tenant_id,
                        source_id=row.id,
                        prefix=prefix,
                        target=target,
                        created_by="tests",
                    )
                )
            session.flush()
            ids[leg.name] = row.id
        session.commit()
    engine.dispose()
    return ids


@asynccontextmanager
async def running_b2bua(
    data_dir: Path,
    legs: list[Leg],
    *,
    mode: str = "always",
    tenant_options: Mapping[str, object] | None = None,
    **overrides: Any,
) -> AsyncIterator[B2bua]:
    """callvault serving SIPREC and B2BUA calls, with ``legs`` registered and routed."""
    async with running_recorder(data_dir, mode=mode, **overrides) as rec:
        sources = await asyncio.to_thread(
            seed_legs, str(rec.app.settings.db_url), rec.tenant_id, legs, tenant_options or {}
        )
        await asyncio.to_thread(rec.app.reload_directory)
        yield B2bua(rec, sources)


def phone_legs(a_target: str, b_target: str) -> list[Leg]:
    """The usual pair: A (PBX, 127.0.0.2) routed to B, B (trunk, 127.0.0.3) routed to A."""
    return [
        Leg("pbx-a", "pbx", PBX_ADDRESS, {"": b_target}),
        Leg("trunk-b", "trunk", TRUNK_ADDRESS, {"": a_target}),
    ]

"""``callvault admin source add|list|remove``: recording sources from the shell.

The same validation as the REST API (``store``), the same audit rows
(``source.create`` / ``source.delete``, actor ``cli``). A running server reads
sources when it starts and after changes made through the API; a change made
here reaches it at its next reload or restart (the command says so).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from callvault.cli_session import SettingsOf, run_in_session
from callvault.sources.limits import SourceLimits

if TYPE_CHECKING:  # the rest is imported when a command runs: `callvault --help` stays quick
    from sqlalchemy.orm import Session

ACTOR = "cli"
_RELOAD_NOTE = "a running server sees this after its next reload or restart"
_DEFAULTS = SourceLimits()



def add_commands(admin_sub: Any, settings_of: SettingsOf) -> None:
    """Adds ``source add|list|remove`` to the ``admin`` sub-commands."""
    source = admin_sub.add_parser("source", help="recording sources (SBCs, PBXs) allowed to record")
    sub = source.add_subparsers(dest="source_command", required=True)

    add = sub.add_parser("add", help="register a recording source")
    add.add_argument("name")
    add.add_argument(
        "--kind",
        choices=("siprec", "pbx", "trunk"),
        default="siprec",
        help="siprec: sends SIPREC (default); pbx or trunk: a leg of the in-path B2BUA",
    )
    add.add_argument("--network", action="append", default=[], help="CIDR or address; repeat")
    add.add_argument(
        "--fingerprint",
        action="append",
        default=[],
        help="SHA-256 of the client certificate (hex, colons allowed); repeat",
    )
    add.add_argument(
        "--tenant", action="append", default=[], help="tenant id or name it records for; repeat"
    )
    add.add_argument("--require-tls", action="store_true")
    add.add_argument("--require-srtp", action="store_true")
    add.add_argument("--max-calls", type=int, default=_DEFAULTS.max_calls)
    add.add_argument("--max-streams", type=int, default=_DEFAULTS.max_streams)
    add.add_argument("--max-media-lines", type=int, default=_DEFAULTS.max_media_lines)
    add.add_argument(
        "--max-session-expires", type=int, default=_DEFAULTS.max_session_expires_s, metavar="S"
    )
    add.add_argument("--data-dir", type=Path)
    add.set_defaults(func=lambda args: run_in_session(args, settings_of, _add))

    listing = sub.add_parser("list", help="show the registered sources")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.add_argument("--data-dir", type=Path)
    listing.set_defaults(func=lambda args: run_in_session(args, settings_of, _list))

    remove = sub.add_parser("remove", help="remove a source (by id or name)")
    remove.add_argument("source", help="id or name")
    remove.add_argument("--data-dir", type=Path)
    remove.set_defaults(func=lambda args: run_in_session(args, settings_of, _remove))



def _tenant_ids(session: Session, refs: list[str]) -> list[int]:
    from sqlalchemy import select

    from callvault.db.models import Tenant
    from callvault.errors import ErrorId, InvalidInput

    ids = []
    for ref in refs:
        query = select(Tenant.id).where(
            Tenant.id == int(ref) if ref.isdigit() and len(ref) < 10 else Tenant.name == ref
        )
        found = session.scalar(query)
        if found is None:
            raise InvalidInput(f"no such tenant: {ref}", error_id=ErrorId.SOURCE_TENANT_UNKNOWN)
        ids.append(found)
    return ids


def _add(session: Session, args: argparse.Namespace) -> int:
    from callvault.portal.audit import record
    from callvault.sources.store import SourceSpec, add_source, source_facts

    spec = SourceSpec(
        name=args.name,
        networks=args.network,
        fingerprints=args.fingerprint,
        tenant_ids=_tenant_ids(session, args.tenant),
        require_tls=args.require_tls,
        require_srtp=args.require_srtp,
        kind=args.kind,
        limits=SourceLimits(
            max_calls=args.max_calls,
            max_streams=args.max_streams,
            max_media_lines=args.max_media_lines,
            max_session_expires_s=args.max_session_expires,
        ),
    )
    row = add_source(session, spec, created_by=ACTOR)
    record(
        session, None, ACTOR, "source.create", None, target=f"source:{row.id}", **source_facts(row)
    )
    session.commit()
    print(f"source {row.id} {row.name!r} registered; {_RELOAD_NOTE}")
    return 0


def _list(session: Session, args: argparse.Namespace) -> int:
    from callvault.sources.store import list_sources, source_facts

    for row in list_sources(session):
        facts = {"id": row.id, **source_facts(row)}
        if args.json:
            print(json.dumps(facts))
            continue
        identity = ", ".join(row.networks + [f"sha256:{f[:16]}..." for f in row.fingerprints])
        tenants = ",".join(map(str, facts["tenant_ids"])) or "-"
        flags = "".join(
            [" tls" if row.require_tls else "", " srtp" if row.require_srtp else ""]
        ).strip()
        print(
            f"{row.id}\t{row.name}\t{row.kind}\t{identity}\ttenants {tenants}\t"
            f"calls {row.max_calls} streams {row.max_streams} m-lines {row.max_media_lines}"
            f" session-expires {row.max_session_expires_s}s"
            + (f"\trequires {flags}" if flags else "")
        )
    return 0


def _remove(session: Session, args: argparse.Namespace) -> int:
    from callvault.portal.audit import record
    from callvault.sources.store import find_source, source_facts

    row = find_source(session, args.source)
    if row is None:
        print(f"callvault: no such recording source: {args.source}", file=sys.stderr)
        return 1
    record(
        session, None, ACTOR, "source.delete", None, target=f"source:{row.id}", **source_facts(row)
    )
    session.delete(row)
    session.commit()
    print(f"source {row.id} {row.name!r} removed; {_RELOAD_NOTE}")
    return 0

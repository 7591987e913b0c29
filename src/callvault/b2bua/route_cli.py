"""``callvault admin route add|list|remove``: the B2BUA's call routes from the shell.

The same validation as the REST API (``route_store``), the same audit rows
(``route.create`` / ``route.delete``, actor ``cli``). Tenants and sources are
named by id or by name. A running server reads routes when it starts and
after changes made through the API; a change made here reaches it at its next
reload or restart (the command says so).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from callvault.cli_session import SettingsOf, run_in_session

if TYPE_CHECKING:  # the rest is imported when a command runs: `callvault --help` stays quick
    from sqlalchemy.orm import Session

ACTOR = "cli"
_RELOAD_NOTE = "a running server sees this after its next reload or restart"


def add_commands(admin_sub: Any, settings_of: SettingsOf) -> None:
    """Adds ``route add|list|remove`` to the ``admin`` sub-commands."""
    route = admin_sub.add_parser("route", help="call routes of the B2BUA (PBX <-> trunk)")
    sub = route.add_subparsers(dest="route_command", required=True)

    add = sub.add_parser("add", help="route a pbx or trunk source's calls to a target")
    add.add_argument("--tenant", required=True, help="tenant id or name")
    add.add_argument("--source", required=True, help="source id or name (kind pbx or trunk)")
    add.add_argument(
        "--prefix", default="", help='number or user-part prefix, e.g. +3120; "" (default): any'
    )
    add.add_argument("--target", required=True, help="sip:HOST[:PORT][;transport=udp|tcp|tls]")
    add.add_argument("--data-dir", type=Path)
    add.set_defaults(func=lambda args: run_in_session(args, settings_of, _add))

    listing = sub.add_parser("list", help="show the call routes")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.add_argument("--data-dir", type=Path)
    listing.set_defaults(func=lambda args: run_in_session(args, settings_of, _list))

    remove = sub.add_parser("remove", help="remove a call route")
    remove.add_argument("route", type=int, help="the route's id")
    remove.add_argument("--data-dir", type=Path)
    remove.set_defaults(func=lambda args: run_in_session(args, settings_of, _remove))


def _tenant_id(session: Session, ref: str) -> int:
    from sqlalchemy import select

    from callvault.db.models import Tenant
    from callvault.errors import ErrorId, InvalidInput

    by_id = ref.isdigit() and len(ref) < 10
    found = session.scalar(
        select(Tenant.id).where(Tenant.id == int(ref) if by_id else Tenant.name == ref)
    )
    if found is None:
        raise InvalidInput(f"no such tenant: {ref}", error_id=ErrorId.ROUTE_TENANT_INVALID)
    return found


def _source_id(session: Session, ref: str) -> int:
    from callvault.errors import ErrorId, InvalidInput
    from callvault.sources.store import find_source

    found = find_source(session, ref)
    if found is None:
        raise InvalidInput(
            f"no such recording source: {ref}", error_id=ErrorId.ROUTE_SOURCE_INVALID
        )
    return found.id


def _add(session: Session, args: argparse.Namespace) -> int:
    from callvault.b2bua.route_store import add_route, route_facts
    from callvault.portal.audit import record

    row = add_route(
        session,
        tenant_id=_tenant_id(session, args.tenant),
        source_id=_source_id(session, args.source),
        prefix=args.prefix,
        target=args.target,
        created_by=ACTOR,
    )
    record(
        session, None, ACTOR, "route.create", None, target=f"route:{row.id}", route=route_facts(row)
    )
    session.commit()
    print(f"route {row.id} added: {row.prefix or '(any)'} -> {row.target}; {_RELOAD_NOTE}")
    return 0


def _list(session: Session, args: argparse.Namespace) -> int:
    from callvault.b2bua.route_store import list_routes, route_facts

    for row in list_routes(session):
        if args.json:
            print(json.dumps({"id": row.id, **route_facts(row)}))
            continue
        print(
            f"{row.id}\ttenant {row.tenant_id}\tsource {row.source_id}\t"
            f"{row.prefix or '(any)'}\t{row.target}"
        )
    return 0


def _remove(session: Session, args: argparse.Namespace) -> int:
    from callvault.b2bua.route_store import route_facts
    from callvault.db.models import CallRoute
    from callvault.portal.audit import record

    row = session.get(CallRoute, args.route) if 1 <= args.route < 2**31 else None
    if row is None:
        print(f"callvault: no such call route: {args.route}", file=sys.stderr)
        return 1
    record(
        session, None, ACTOR, "route.delete", None, target=f"route:{row.id}", route=route_facts(row)
    )
    session.delete(row)
    session.commit()
    print(f"route {row.id} removed; {_RELOAD_NOTE}")
    return 0

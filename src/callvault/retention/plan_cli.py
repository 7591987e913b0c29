"""``callvault admin plan add|list|assign``: the operator's plans from the shell.

The same checks as ``/api/v1/plans`` (``retention/plans.py``) and the same
audit rows (``plan.create``, ``tenant.change``; actor ``cli``).
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from callvault.cli_session import SettingsOf, run_in_session

if TYPE_CHECKING:  # imported when a command runs: `callvault --help` stays quick
    from sqlalchemy.orm import Session

ACTOR = "cli"


def add_commands(admin_sub: Any, settings_of: SettingsOf) -> None:
    """Adds ``plan add|list|assign`` to the ``admin`` sub-commands."""
    plan = admin_sub.add_parser("plan", help="plans: retention ranges and minute quotas")
    sub = plan.add_subparsers(dest="plan_command", required=True)

    add = sub.add_parser("add", help="define a plan")
    add.add_argument("name", help="e.g. 30-120 or fixed-365 (a-z, 0-9, . _ -)")
    add.add_argument("--min", type=int, required=True, dest="low", help="days")
    add.add_argument("--max", type=int, required=True, dest="high", help="days")
    add.add_argument("--default", type=int, dest="default", help="days; default: --min")
    add.add_argument("--minute-quota", type=int, help="minutes of audio kept at most")
    add.add_argument("--data-dir", type=Path)
    add.set_defaults(func=lambda args: run_in_session(args, settings_of, _add))

    listing = sub.add_parser("list", help="show the plans")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.add_argument("--data-dir", type=Path)
    listing.set_defaults(func=lambda args: run_in_session(args, settings_of, _list))

    assign = sub.add_parser("assign", help="put a tenant on a plan")
    assign.add_argument("tenant", help="the tenant's name")
    assign.add_argument("plan", help="the plan's name")
    assign.add_argument("--data-dir", type=Path)
    assign.set_defaults(func=lambda args: run_in_session(args, settings_of, _assign))



def _add(session: Session, args: argparse.Namespace) -> int:
    from callvault.errors import InvalidInput
    from callvault.portal.audit import record
    from callvault.retention.plans import PLAN_NAME_PATTERN, PlanTerms, create_plan

    if not re.match(PLAN_NAME_PATTERN, args.name):
        raise InvalidInput(f"{args.name!r}: a-z, 0-9, '.', '_' and '-', at most 32")
    terms = PlanTerms(args.low, args.high, args.default or args.low, args.minute_quota)
    plan = create_plan(session, args.name, terms, actor=ACTOR)
    record(session, None, ACTOR, "plan.create", None, target=f"plan:{plan.name}", **asdict(terms))
    session.commit()
    print(f"plan {plan.name!r} added")
    return 0


def _list(session: Session, args: argparse.Namespace) -> int:
    from callvault.retention.plans import list_plans, tenants_on

    for plan in list_plans(session):
        facts = {
            "name": plan.name,
            "retention_min_days": plan.retention_min_days,
            "retention_max_days": plan.retention_max_days,
            "retention_default_days": plan.retention_default_days,
            "minute_quota": plan.minute_quota,
            "tenants": len(tenants_on(session, plan)),
        }
        if args.json:
            print(json.dumps(facts))
        else:
            quota = f"  quota {plan.minute_quota} min" if plan.minute_quota else ""
            print(
                f"{plan.name:<20} {plan.retention_min_days}-{plan.retention_max_days} days"
                f" (default {plan.retention_default_days}){quota}  tenants {facts['tenants']}"
            )
    return 0


def _assign(session: Session, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from sqlalchemy import select

    from callvault.db.models import Tenant
    from callvault.errors import ErrorId, NotFound
    from callvault.portal.audit import record
    from callvault.retention.plans import assign_plan, get_plan

    tenant = session.scalar(select(Tenant).where(Tenant.name == args.tenant))
    if tenant is None:
        raise NotFound(f"no tenant named {args.tenant!r}", error_id=ErrorId.TENANT_NOT_FOUND)
    changed = assign_plan(session, tenant, get_plan(session, args.plan), datetime.now(UTC))
    if changed:
        record(
            session,
            None,
            ACTOR,
            "tenant.change",
            tenant.id,
            target=f"tenant:{tenant.id}",
            **{key: diff["new"] for key, diff in changed.items()},
            old={key: diff["old"] for key, diff in changed.items()},
        )
    session.commit()
    print(f"{tenant.name!r} is on plan {tenant.plan!r} ({tenant.retention_days} days)")
    return 0

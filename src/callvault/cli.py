"""The ``callvault`` command: serve, demo, check, admin, bench (SPEC section 9)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from callvault.b2bua.route_cli import add_commands as add_route_commands
from callvault.logs import configure_logging
from callvault.retention.plan_cli import add_commands as add_plan_commands
from callvault.settings import Settings, SettingsError, load_settings
from callvault.sources.cli import add_commands as add_source_commands


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = args.data_dir
    if getattr(args, "roles", None):
        overrides["roles"] = args.roles  # "media,worker": checked like CALLVAULT_ROLES
    return load_settings(args.config, **overrides)


def _serve(args: argparse.Namespace) -> int:
    from callvault.app import run_server

    settings = _settings(args)
    # on a terminal the first start asks who the operator is; elsewhere it makes one up
    run_server(settings, ask=_ask_operator if sys.stdin.isatty() else None)
    return 0


def _ask_operator() -> tuple[str, str]:
    """The operator's login and password from the person at the terminal (asked again if short)."""
    import getpass

    from callvault.errors import InvalidInput
    from callvault.portal.passwords import check_new_password

    print("first start: no operator yet; choose the operator's portal login and password")
    login = input("login [operator]: ").strip() or "operator"
    while True:
        password = getpass.getpass("password: ")
        try:
            check_new_password(password)
        except InvalidInput as exc:
            print(f"callvault: {exc}")
            continue
        if getpass.getpass("password again: ") == password:
            return login, password
        print("callvault: the passwords differ")


def _check(args: argparse.Namespace) -> int:
    from callvault.check import run_checks

    try:
        settings = _settings(args)
    except SettingsError as exc:
        print(f"error    settings: {exc}")
        return 1
    return run_checks(settings, out=sys.stdout)


def _read_password() -> str:
    """From the terminal without echo, else the first line of stdin (never argv: ps shows it)."""
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass("password: ")
    return sys.stdin.readline().rstrip("\r\n")


def _bootstrap(args: argparse.Namespace) -> int:
    from callvault.admin import LoginTaken, bootstrap_operator
    from callvault.db.engine import make_engine, make_sessionmaker, migrate
    from callvault.errors import InvalidInput

    settings = _settings(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate(settings.db_url)
    sessions = make_sessionmaker(make_engine(settings.db_url))
    password = _read_password() if args.login else None
    with sessions() as session:
        try:
            operator, token = bootstrap_operator(
                session, args.name, login=args.login, password=password
            )
        except (InvalidInput, LoginTaken) as exc:
            print(f"callvault: {exc}", file=sys.stderr)
            return 2
    if token is None:
        print(f"operator {operator.name!r} already exists; no new operator was created")
    else:
        print(f"operator {operator.name!r} created")
        print(f"API token (shown once): {token}")
    if args.login:
        print(f"portal login {operator.login!r} set")
    return 0


def _tenant_action(args: argparse.Namespace) -> int:
    """``admin add-user`` / ``admin enable``: the same checks and audit rows as the API."""
    from sqlalchemy import select

    from callvault.db.engine import make_engine, make_sessionmaker, migrate
    from callvault.db.models import Tenant
    from callvault.errors import ApiError
    from callvault.portal.audit import record
    from callvault.tenants.enablement import as_feature, set_feature
    from callvault.tenants.service import create_user

    settings = _settings(args)
    migrate(settings.db_url)
    engine = make_engine(settings.db_url)
    try:
        with make_sessionmaker(engine)() as session:
            tenant = session.scalar(select(Tenant).where(Tenant.name == args.tenant))
            if tenant is None:
                print(f"callvault: no tenant named {args.tenant!r}", file=sys.stderr)
                return 2
            try:
                if args.admin_command == "add-user":
                    user = create_user(
                        session,
                        tenant,
                        args.name,
                        extension=args.extension,
                        aors=args.aor,
                        numbers=args.number,
                        role=args.role,
                    )
                    if args.can_coach:  # silent coaching (SPEC 7)
                        user.can_coach = True
                        record(
                            session, None, "cli", "user.change", tenant.id,
                            target=f"user:{user.id}", can_coach=True,
                        )  # fmt: skip
                    done = f"user {user.name!r} added to {tenant.name!r}"
                else:
                    state, _changed = set_feature(
                        session,
                        tenant.id,
                        as_feature(args.feature),
                        not args.off,
                        actor="cli",
                        reference=args.reference,
                    )
                    done = f"{state.feature} {'enabled' if state.enabled else 'disabled'}"
            except (ApiError, ValueError) as exc:
                print(f"callvault: {exc}", file=sys.stderr)
                return 2
            session.commit()
    finally:
        engine.dispose()
    print(done)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from callvault.demo.run import run_demo

    return run_demo(data_dir=args.data_dir, keep_running=not args.exit)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callvault", description=__doc__)
    parser.add_argument("--config", type=Path, help="TOML settings file")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run SIP, RTP, HTTP and workers in one process")
    serve.add_argument("--data-dir", type=Path)
    serve.add_argument(
        "--roles",
        help="comma list of media, web, worker (default all three; setting roles,"
        " CALLVAULT_ROLES): media = SIP, RTP and finishing, web = portal and API,"
        " worker = jobs",
    )
    serve.set_defaults(func=_serve)

    demo = sub.add_parser("demo", help="start a server with demo data and record a few calls")
    demo.add_argument("--data-dir", type=Path, default=None)
    demo.add_argument("--exit", action="store_true", help="stop after the calls are recorded")
    demo.set_defaults(func=_demo)

    check = sub.add_parser(
        "check", help="check settings, database, blob store, certificates and ports; 1 on errors"
    )
    check.add_argument("--data-dir", type=Path)
    check.set_defaults(func=_check)

    admin = sub.add_parser("admin", help="administration")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    boot = admin_sub.add_parser("bootstrap", help="create the operator account and a token")
    boot.add_argument("--name", default="operator")
    boot.add_argument("--data-dir", type=Path)
    boot.add_argument(
        "--login",
        help="also set the operator's portal login; the password is read from stdin",
    )
    boot.set_defaults(func=_bootstrap)
    add_user = admin_sub.add_parser(
        "add-user", help="add a user; AORs and numbers must lie in the tenant's own"
    )
    add_user.add_argument("tenant", help="the tenant's name")
    add_user.add_argument("name")
    add_user.add_argument("--extension")
    add_user.add_argument("--aor", action="append", default=[], help="repeatable")
    add_user.add_argument("--number", action="append", default=[], help="repeatable, E.164")
    add_user.add_argument("--role", choices=("user", "listener", "admin"), default="user")
    add_user.add_argument(
        "--can-coach",
        action="store_true",
        help="may coach calls silently (*98*<extension>; admins and listeners, where enabled)",
    )
    add_user.add_argument("--data-dir", type=Path)
    add_user.set_defaults(func=_tenant_action)
    enable = admin_sub.add_parser(
        "enable",
        help="enable recording, listening or coaching for a tenant (after the signed declaration)",
    )
    enable.add_argument("tenant", help="the tenant's name")
    enable.add_argument("feature", choices=("recording", "listening", "coaching"))
    enable.add_argument("--reference", help="the signed declaration's reference (to enable)")
    enable.add_argument("--off", action="store_true", help="disable instead")
    enable.add_argument("--data-dir", type=Path)
    enable.set_defaults(func=_tenant_action)
    add_source_commands(admin_sub, _settings)
    add_route_commands(admin_sub, _settings)
    add_plan_commands(admin_sub, _settings)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging()  # serve reconfigures from its settings (level, format)
    try:
        code: int = args.func(args)
    except SettingsError as exc:
        print(f"callvault: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())

"""Running one admin subcommand in a database session (``callvault admin source|plan ...``).

The database is migrated first; an ``ApiError`` (the same checks as the API)
becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from callvault.settings import Settings

if TYPE_CHECKING:  # imported when a command runs: `callvault --help` stays quick
    from sqlalchemy.orm import Session

SettingsOf = Callable[[argparse.Namespace], Settings]
Action = Callable[["Session", argparse.Namespace], int]


def run_in_session(args: argparse.Namespace, settings_of: SettingsOf, action: Action) -> int:
    from callvault.db.engine import make_engine, make_sessionmaker, migrate
    from callvault.errors import ApiError

    settings = settings_of(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate(settings.db_url)
    engine = make_engine(settings.db_url)
    try:
        with make_sessionmaker(engine)() as session:
            try:
                return action(session, args)
            except ApiError as exc:
                print(f"callvault: {exc}", file=sys.stderr)
                return 2
    finally:
        engine.dispose()

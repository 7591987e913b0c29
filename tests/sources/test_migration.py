"""Migration 0007 builds what the models describe, and goes down and up again (SQLite)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from callvault.db.engine import alembic_config, make_engine, migrate
from callvault.db.models import Base

TABLES = {"recording_sources", "recording_source_tenants"}


def _only_ours(name: str | None, type_: str, parents: dict[str, str | None]) -> bool:
    if type_ == "schema":
        return True
    table = name if type_ == "table" else parents.get("table_name")
    return table in TABLES


def _our_object(item: Any, name: str | None, type_: str, _reflected: bool, _other: Any) -> bool:
    table = name if type_ == "table" else getattr(getattr(item, "table", None), "name", None)
    return table in TABLES


def _differences(url: str) -> list[object]:
    """What autogenerate would still add or change for the sources' tables."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={
                    "include_name": _only_ours,
                    "include_object": _our_object,
                    "compare_type": True,
                },
            )
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


# the label index on lower(text) cannot be reflected on SQLite; it is not ours
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression")
def test_models_and_migration_agree_and_downgrade_works(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    assert _differences(url) == []
    engine = make_engine(url)
    try:
        assert set(inspect(engine).get_table_names()) >= TABLES
        command.downgrade(alembic_config(url), "0006")
        assert not TABLES & set(inspect(engine).get_table_names())
        migrate(url)
        assert set(inspect(engine).get_table_names()) >= TABLES
    finally:
        engine.dispose()

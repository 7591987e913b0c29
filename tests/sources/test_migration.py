"""Migration 0007 builds what the models describe, and goes down and up again (SQLite)."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect

from callvault.db.engine import alembic_config, make_engine, migrate
from tests.schema_diff import schema_differences

TABLES = {"recording_sources", "recording_source_tenants"}


# the label index on lower(text) cannot be reflected on SQLite; it is not ours
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression")
def test_models_and_migration_agree_and_downgrade_works(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    assert schema_differences(url, TABLES, compare_type=True) == []
    engine = make_engine(url)
    try:
        assert set(inspect(engine).get_table_names()) >= TABLES
        command.downgrade(alembic_config(url), "0006")
        assert not TABLES & set(inspect(engine).get_table_names())
        migrate(url)
        assert set(inspect(engine).get_table_names()) >= TABLES
    finally:
        engine.dispose()

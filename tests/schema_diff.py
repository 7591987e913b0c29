"""What Alembic's autogenerate would still change for some tables: a migration
test's check that the migrated schema matches the models (empty when it does)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from callvault.db.engine import make_engine
from callvault.db.models import Base


def schema_differences(
    url: str, tables: Collection[str], *, compare_type: bool | None = None
) -> list[object]:
    """Autogenerate's differences between the database at ``url`` and the models,
    for ``tables`` (and their indexes and constraints) only."""

    def only_ours(name: str | None, type_: str, parents: dict[str, str | None]) -> bool:
        if type_ == "schema":
            return True
        return (name if type_ == "table" else parents.get("table_name")) in tables

    def our_object(item: Any, name: str | None, type_: str, _reflected: bool, _other: Any) -> bool:
        table = name if type_ == "table" else getattr(getattr(item, "table", None), "name", None)
        return table in tables

    opts: dict[str, Any] = {"include_name": only_ours, "include_object": our_object}
    if compare_type is not None:
        opts["compare_type"] = compare_type
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts=opts)
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()

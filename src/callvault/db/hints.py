"""Hints to the query planners of SQLite and PostgreSQL (SPEC section 10: both run callvault).

SQLite plans without statistics: where a query must start from one index and
not another, the column of the other is written ``column + 0``, which no index
serves (the SQLite documentation's way to disqualify an index). PostgreSQL
plans from statistics, and there the same ``+ 0`` only hurts: an expression
has no statistics, so it estimates the scope as 0.5 % of the rows and picks a
plan for a handful (a hash of a whole table's parties where a walk of one page
was right: issue 13's 10 M calls bench). ``unindexed`` is ``+ 0`` on SQLite and
the plain column elsewhere.

PostgreSQL also starts parallel workers for a walk it expects to be long; for
a page (LIMIT 51) that stops early, starting them costs more than the walk
(10–30 ms at 10 M calls), and each worker builds its own copy of a hashed
subquery. ``serial`` turns them off for the queries of one block.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import ColumnElement, SQLColumnExpression, text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement


class Unindexed(FunctionElement[Any]):
    """A column that SQLite's planner may not use an index for (see the module)."""

    inherit_cache = True  # cached like any function: by its argument

    def __init__(self, column: SQLColumnExpression[Any]) -> None:
        super().__init__(column)
        self.type = self.clauses.clauses[0].type


@compiles(Unindexed)
def _plain(element: Unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses.clauses[0], **kw)


@compiles(Unindexed, "sqlite")
def _plus_zero(element: Unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(element.clauses.clauses[0], **kw)} + 0)"


def unindexed(column: SQLColumnExpression[Any]) -> ColumnElement[Any]:
    """``column`` for comparisons SQLite must not answer from an index on it."""
    return Unindexed(column)


_WORKERS = "max_parallel_workers_per_gather"


@contextmanager
def serial(session: Session) -> Iterator[None]:
    """No parallel workers for the queries run in the block (PostgreSQL; elsewhere
    nothing): set in the session's transaction only, and the setting it had
    before restored after the block, so a longer transaction keeps its own.

    Restored only when the block succeeds: after a failed statement the
    transaction is aborted, so the restoring statement would fail too and its
    error (InFailedSqlTransaction) would replace the block's. A block that
    raises leaves the workers off until the transaction ends (its rollback
    drops the setting)."""
    if session.get_bind().dialect.name != "postgresql":
        yield
        return
    connection = session.connection()
    before = str(connection.scalar(text(f"SELECT current_setting('{_WORKERS}')")))
    connection.execute(text(f"SELECT set_config('{_WORKERS}', '0', true)"))
    yield
    connection.execute(text(f"SELECT set_config('{_WORKERS}', :before, true)"), {"before": before})

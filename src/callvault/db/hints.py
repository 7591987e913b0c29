"""Hints to the query planners of SQLite and PostgreSQL (SPEC section 10: both run callvault).

SQLite plans without statistics: where a query must start from one index and
not another, the column of the other is written ``column + 0``, which no index
serves (the SQLite documentation's way to disqualify an index). PostgreSQL
plans from statistics, and there the same ``+ 0`` only hurts: an expression
has no statistics, so it estimates the scope as 0.5 % of the rows and picks a
plan for a handful (a hash of a whole table's parties where a walk of one page
was right: issue 13's 10 M calls bench). ``unindexed`` is ``+ 0`` on SQLite and
the plain column elsewhere.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, SQLColumnExpression
from sqlalchemy.ext.compiler import compiles
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

"""Bulk writes: many rows in one executemany (psycopg pipelines it; SQLite loops in C) instead of
one ORM object each, on PostgreSQL and SQLite alike.

No RETURNING here on purpose: SQLAlchemy turns an executemany with RETURNING into multi-row
VALUES statements of thousands of parameters, which psycopg re-parses on every call (no cache
for long statements) - slower than the insert itself. Callers find their new rows by a key they
chose instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.orm import Session

from paperalerts.edges.db.models import Base


def table_of(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


def insert_ignoring_conflicts(
    s: Session, model: type[Base], rows: Sequence[dict[str, Any]]
) -> None:
    """INSERT the rows in the session's transaction, skipping each one that conflicts with a
    unique key (ON CONFLICT DO NOTHING). Every row must have the same keys."""
    if not rows:
        return
    table = table_of(model)
    dialect = s.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt: Any = pg_insert(table).on_conflict_do_nothing()
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(table).on_conflict_do_nothing()
    else:  # pragma: no cover - the two supported databases are above
        raise NotImplementedError(f"bulk insert on {dialect}")
    s.connection().execute(stmt, list(rows))

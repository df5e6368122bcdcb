"""The database edge: tables, engine, sessions and migrations."""

from paperalerts.db.engine import (
    current_revision,
    head_revision,
    make_engine,
    session_factory,
    transaction,
    upgrade,
)

__all__ = [
    "current_revision",
    "head_revision",
    "make_engine",
    "session_factory",
    "transaction",
    "upgrade",
]

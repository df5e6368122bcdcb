"""The database edge: tables, engine, sessions and migrations."""

# repo registers the session hook that moves the rules version on every rule change.
from paperalerts.edges.db import repo as _repo  # noqa: F401
from paperalerts.edges.db.engine import (
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

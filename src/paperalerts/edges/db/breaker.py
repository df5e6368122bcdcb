"""The relay breaker's shared state (`paperalerts.core.breaker`): one ``state`` row,
``relay_breaker`` -> JSON, so every worker and process sees one breaker. Each change is a
read-modify-write under the row's lock (SELECT ... FOR UPDATE on PostgreSQL; SQLite's write
lock), so concurrent senders count every failure and exactly one takes a probe."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Final

from sqlalchemy.orm import Session, sessionmaker

from paperalerts.core.breaker import Breaker
from paperalerts.edges.db import models as m
from paperalerts.edges.db.bulk import insert_ignoring_conflicts
from paperalerts.edges.db.engine import transaction

KEY: Final = "relay_breaker"


def read(s: Session) -> Breaker:
    """The breaker as stored (closed when never written or unreadable)."""
    row = s.get(m.State, KEY)
    return _parse(None if row is None else row.value)


def _parse(value: str | None) -> Breaker:
    if not value:
        return Breaker()
    try:
        data = json.loads(value)
    except ValueError:
        return Breaker()
    return Breaker.from_json(data) if isinstance(data, dict) else Breaker()


def change(
    factory: sessionmaker[Session], step: Callable[[Breaker], Breaker]
) -> tuple[Breaker, Breaker]:
    """Apply `step` to the stored breaker under its lock; (before, after)."""
    with transaction(factory) as s:
        insert_ignoring_conflicts(s, m.State, [{"key": KEY, "value": ""}])
        row = s.get_one(m.State, KEY, with_for_update=True, populate_existing=True)
        before = _parse(row.value)
        after = step(before)
        if after != before:
            row.value = json.dumps(after.to_json())
        return before, after

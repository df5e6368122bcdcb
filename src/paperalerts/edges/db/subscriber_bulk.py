"""Subscribers in bulk: a chunk of imported rows read and written with a handful of statements
(executemany; ON CONFLICT for inserts), and every subscriber streamed out for an export, on
PostgreSQL and SQLite alike. One ORM object per row would be ~70 rows/s; these run thousands.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    any_,
    bindparam,
    delete,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import InstrumentedAttribute, Session

from paperalerts.core.subscriber_rows import Change, Stored
from paperalerts.edges.db import models as m
from paperalerts.edges.db.bulk import insert_ignoring_conflicts, table_of

_SUB = table_of(m.Subscriber)
_FOLLOW = table_of(m.SubscriberTopic)
# SQLite allows 32766 bound parameters per statement (PostgreSQL 65535); IN lists stay below.
_IN_CHUNK = 5_000


def topic_ids_by_name(s: Session) -> dict[str, int]:
    """Every topic's id by its casefolded name (how import rows name topics)."""
    return {name.casefold(): tid for tid, name in s.execute(select(m.Topic.id, m.Topic.name))}


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), _IN_CHUNK):
        yield items[i:i + _IN_CHUNK]


def _among(s: Session, column: InstrumentedAttribute[Any], values: Sequence[Any]
           ) -> ColumnElement[bool]:
    """``column IN values``. On PostgreSQL as ``= ANY(array)``: one parameter, so psycopg does
    not re-parse a statement of thousands of placeholders on every chunk."""
    if s.get_bind().dialect.name == "postgresql":
        kind = Integer() if isinstance(column.type, Integer) else String()
        return column == any_(bindparam(None, list(values), type_=ARRAY(kind)))
    return column.in_(values)


def _insert(s: Session, model: type[m.Base], rows: Sequence[dict[str, Any]]
            ) -> dict[str, int] | None:
    """INSERT the rows (all with the same keys), skipping any that conflicts with a unique key
    (a sign-up that created the address meanwhile). Columns left out get their scalar defaults.

    On PostgreSQL the rows are COPYed into a temporary table and moved with one
    ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` (how listmonk imports): psycopg's COPY
    writes rows in C, several times cheaper than executemany's statement per row or array
    parameters (whose text quoting is Python); it returns the new subscribers' ids by email.
    SQLite: executemany, which loops in C already; returns None (the caller looks the ids up:
    the import's transaction holds SQLite's write lock, so nobody else created any meanwhile)."""
    if not rows:
        return {}
    if s.get_bind().dialect.name != "postgresql":
        insert_ignoring_conflicts(s, model, rows)
        return None
    table = table_of(model)
    cols = [c for c in table.columns if c.name in rows[0]
            or (c.default is not None and c.default.is_scalar)]
    defaults = {c.name: c.default.arg for c in cols if c.name not in rows[0]}  # type: ignore[union-attr]
    names = ", ".join(f'"{c.name}"' for c in cols)
    tmp = f"import_{table.name}"
    s.execute(text(f'CREATE TEMPORARY TABLE IF NOT EXISTS {tmp} ON COMMIT DROP AS '
                   f'SELECT {names} FROM "{table.name}" WITH NO DATA'))
    s.execute(text(f"TRUNCATE {tmp}"))
    raw = s.connection().connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(f"COPY {tmp} ({names}) FROM STDIN") as copy:
        for r in rows:
            copy.write_row([r[c.name] if c.name in r else defaults[c.name] for c in cols])
    back = " RETURNING email, id" if model is m.Subscriber else ""
    result = s.execute(text(f'INSERT INTO "{table.name}" ({names}) SELECT {names} FROM {tmp} '
                            f"ON CONFLICT DO NOTHING{back}"))
    return dict(result.all()) if back else None


def load_stored(s: Session, emails: Sequence[str]) -> dict[str, Stored]:
    """The stored subscribers among `emails`, with their rules and followed topics."""
    subs: dict[int, tuple[Any, ...]] = {}
    for part in _chunks(emails):
        for r in s.execute(select(
            m.Subscriber.id, m.Subscriber.email, m.Subscriber.status, m.Subscriber.name,
            m.Subscriber.frequency, m.Subscriber.send_hour, m.Subscriber.weekday,
            m.Subscriber.timezone,
        ).where(_among(s, m.Subscriber.email, part))):
            subs[r[0]] = tuple(r)
    ids = list(subs)
    rules: dict[int, dict[str, int]] = {i: {} for i in ids}
    follows: dict[int, set[int]] = {i: set() for i in ids}
    for part in _chunks(ids):
        for sid, query, rid in s.execute(select(m.Rule.subscriber_id, m.Rule.query, m.Rule.id)
                                         .where(_among(s, m.Rule.subscriber_id, part))
                                         .order_by(m.Rule.id)):
            rules[sid].setdefault(query, rid)
        for sid, tid in s.execute(select(_FOLLOW.c.subscriber_id, _FOLLOW.c.topic_id)
                                  .where(_among(s, m.SubscriberTopic.subscriber_id, part))):
            follows[sid].add(tid)
    return {
        r[1]: Stored(r[0], r[2], r[3], r[4], r[5], r[6], r[7], rules[r[0]],
                     frozenset(follows[r[0]]))
        for r in subs.values()
    }


def write_changes(s: Session, changes: Sequence[Change], now: datetime) -> list[Change]:
    """Write a chunk's changes in the session's transaction: new subscribers, updated columns,
    added and removed rules and follows. Unchanged rows cost nothing. Returns the new rows that
    were not written because a sign-up created the same address meanwhile (neither duplicated nor
    given this row's rules: the caller reports them)."""
    new = [c for c in changes if c.stored is None]
    created = _insert(s, m.Subscriber, [dict(c.values) for c in new])
    if created is None:
        created = {}
        for part in _chunks([c.row.email for c in new]):
            created.update(s.execute(select(m.Subscriber.email, m.Subscriber.id)
                                     .where(_among(s, m.Subscriber.email, part))).all())
    lost = [c for c in new if c.row.email not in created]
    if lost:
        changes = [c for c in changes if c not in lost]
    ids = {c.row.email: c.stored.id for c in changes if c.stored is not None} | created
    _update_columns(s, [c for c in changes if c.stored is not None and c.values])
    rule_rows = [{"subscriber_id": ids[c.row.email], "query": q, "normalized": norm,
                  "name": "", "enabled": True, "created_at": now, "updated_at": now}
                 for c in changes for q, norm in c.rules_added]
    _insert(s, m.Rule, rule_rows)
    gone = [rid for c in changes for rid in c.rules_removed]
    for part in _chunks(gone):
        s.execute(delete(m.Rule).where(_among(s, m.Rule.id, part)))
    _insert(s, m.SubscriberTopic, [
        {"subscriber_id": ids[c.row.email], "topic_id": t} for c in changes
        for t in c.topics_added])
    unfollow = [(ids[c.row.email], t) for c in changes for t in c.topics_removed]
    if unfollow:
        s.connection().execute(
            _FOLLOW.delete().where(_FOLLOW.c.subscriber_id == bindparam("sid"),
                                   _FOLLOW.c.topic_id == bindparam("tid")),
            [{"sid": sid, "tid": tid} for sid, tid in unfollow])
    return lost


def _update_columns(s: Session, changes: Iterable[Change]) -> None:
    """One executemany per set of changed columns (rows changing the same columns share it)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for c in changes:
        assert c.stored is not None
        keys = tuple(sorted(c.values))
        groups.setdefault(keys, []).append({"_id": c.stored.id, **{f"_{k}": c.values[k]
                                                                  for k in keys}})
    for keys, rows in groups.items():
        stmt = (update(_SUB).where(_SUB.c.id == bindparam("_id"))
                .values({k: bindparam(f"_{k}") for k in keys}))
        s.connection().execute(stmt, rows)


def stream_subscribers(s: Session, chunk: int = 2_000) -> Iterator[dict[str, Any]]:
    """Every subscriber ordered by email as the import reads them (topics by name, rules in the
    order they were added), read a chunk at a time so memory stays flat."""
    topics = dict(s.execute(select(m.Topic.id, m.Topic.name)).all())
    last = ""
    while True:
        batch = list(s.execute(select(
            m.Subscriber.id, m.Subscriber.email, m.Subscriber.name, m.Subscriber.status,
            m.Subscriber.frequency, m.Subscriber.send_hour, m.Subscriber.weekday,
            m.Subscriber.timezone,
        ).where(m.Subscriber.email > last).order_by(m.Subscriber.email).limit(chunk)))
        if not batch:
            return
        ids = [r[0] for r in batch]
        rules: dict[int, list[str]] = {}
        for sid, query in s.execute(select(m.Rule.subscriber_id, m.Rule.query)
                                    .where(_among(s, m.Rule.subscriber_id, ids))
                                    .order_by(m.Rule.id)):
            rules.setdefault(sid, []).append(query)
        follows: dict[int, list[str]] = {}
        for sid, tid in s.execute(select(_FOLLOW.c.subscriber_id, _FOLLOW.c.topic_id)
                                  .where(_among(s, m.SubscriberTopic.subscriber_id, ids))):
            follows.setdefault(sid, []).append(topics[tid])
        for sid, email, name, status, freq, hour, day, tz in batch:
            yield {"email": email, "name": name, "status": status, "frequency": freq,
                   "send_hour": hour, "weekday": day, "timezone": tz,
                   "topics": sorted(follows.get(sid, [])), "rules": rules.get(sid, [])}
        last = batch[-1][1]

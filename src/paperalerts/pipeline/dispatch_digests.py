"""Due daily and weekly digests, created in bulk: a chunk of subscribers per transaction.

Per chunk, a fixed number of statements whatever its size: read the due subscribers (locked, and
on PostgreSQL skipping those another dispatcher holds), which of them have undelivered matches,
insert their deliveries, attach each new delivery's undelivered matches, and move every
subscriber's next digest time on. A subscriber whose period has a delivery already (rare: a send
hour moved after the day's digest) goes through `deliveries.open_or_attach` on its own, so its
matches join that delivery if it was never handed out, or open ``key~2``: none is left behind.
Each chunk's new delivery ids are handed to `on_created` once it has committed,
so sending starts while later chunks are still being dispatched, and memory does not grow with
the number of subscribers.

**Matching first.** A due subscriber is *held* (no delivery, its `next_digest_at` left where it
is, so the next dispatch looks again) while paper events scraped at or before its send time are
still unmatched (matching is behind, or a match run has not committed yet: its events stay
unmatched until it does). The hold is bounded by `match_wait` past the send time: a matcher that
is broken or hopelessly behind does not hold digests forever; they then go out with what was
matched and the rest joins the next digest (and health shows the ``matching`` incident). The
unmatched-events check is read before the pending-matches read, so a match run committing in
between is seen by the second read: nothing matched before the send time is skipped.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.core.schedule import Frequency, next_digest_at, period_key
from paperalerts.edges.db import deliveries
from paperalerts.edges.db import models as m
from paperalerts.edges.db.bulk import insert_ignoring_conflicts, table_of
from paperalerts.edges.db.engine import transaction

log = logging.getLogger(__name__)

CHUNK = 1000
OnCreated = Callable[[list[int]], None]


class _DispatchConfig(Protocol):
    @property
    def send_empty(self) -> bool: ...

    @property
    def match_wait(self) -> timedelta: ...


def dispatch_periodic(
    factory: sessionmaker[Session],
    cfg: _DispatchConfig,
    *,
    now: datetime,
    chunk: int = CHUNK,
    on_created: OnCreated | None = None,
) -> list[int]:
    """Create the digests of active daily and weekly subscribers whose `next_digest_at` has come
    (one per period, with every undelivered match; none on a period with nothing matched unless
    `send_empty`) and move their next time on; schedule, without sending, those never
    scheduled. A due subscriber is held (left due, nothing created) while events scraped by
    its send time are unmatched, for at most `cfg.match_wait` past it. Returns the new delivery
    ids."""
    created: list[int] = []
    after = 0
    while True:
        with transaction(factory) as s:
            subs = _due(s, now, after, chunk)
            if not subs:
                break
            after = subs[-1][0]
            ids = _dispatch_chunk(s, cfg, subs, now)
        created += ids
        if ids and on_created is not None:
            on_created(ids)
    return created


def _due(s: Session, now: datetime, after: int, limit: int) -> list[Any]:
    q = (
        select(
            m.Subscriber.id,
            m.Subscriber.frequency,
            m.Subscriber.send_hour,
            m.Subscriber.weekday,
            m.Subscriber.timezone,
            m.Subscriber.next_digest_at,
        )
        .where(
            m.Subscriber.id > after,
            m.Subscriber.status == "active",
            m.Subscriber.frequency.in_(("daily", "weekly")),
            or_(m.Subscriber.next_digest_at.is_(None), m.Subscriber.next_digest_at <= now),
        )
        .order_by(m.Subscriber.id)
        .limit(limit)
    )
    if s.get_bind().dialect.name == "postgresql":
        # Two dispatchers never work on one subscriber; neither waits for the other.
        q = q.with_for_update(skip_locked=True)
    return list(s.execute(q))


def oldest_unmatched(s: Session) -> datetime | None:
    """When the oldest paper event the matcher has not committed yet was scraped (None: none)."""
    return s.scalar(select(func.min(m.PaperEvent.at)).where(m.PaperEvent.matched_at.is_(None)))


def held_for_matching(
    due_at: datetime | None, oldest: datetime | None, now: datetime, wait: timedelta
) -> bool:
    """True when a digest due at `due_at` waits: an event scraped by then is still unmatched and
    the wait bound past the send time has not run out."""
    return (
        due_at is not None and oldest is not None and oldest <= due_at and now < due_at + wait
    )


def _dispatch_chunk(s: Session, cfg: _DispatchConfig, subs: list[Any], now: datetime) -> list[int]:
    # Read before the pending matches: a match run committing in between is then seen below.
    oldest = oldest_unmatched(s)
    subs = [r for r in subs if not held_for_matching(r[5], oldest, now, cfg.match_wait)]
    late = sum(1 for r in subs if oldest is not None and r[5] is not None and oldest <= r[5])
    if late:
        log.warning(
            "%d digests go out without waiting longer for matching (events unmatched since %s, "
            "past the %s wait); those papers join the next digest", late, oldest, cfg.match_wait,
        )
    if not subs:
        return []
    sub_ids = [row[0] for row in subs]
    pending = set(
        s.scalars(
            select(m.Match.subscriber_id)
            .where(m.Match.subscriber_id.in_(sub_ids), m.Match.delivery_id.is_(None))
            .distinct()
        )
    )
    new: list[dict[str, Any]] = []
    moves: list[dict[str, Any]] = []
    for sid, freq, hour, weekday, tz, due_at in subs:
        f = cast(Frequency, freq)  # validated when stored
        if due_at is not None and (sid in pending or cfg.send_empty):
            new.append(
                dict(
                    subscriber_id=sid,
                    kind="digest",
                    period_key=period_key(f, tz, due_at),
                    view_key=secrets.token_urlsafe(24),
                )
            )
        # never scheduled: schedule now, send nothing yet
        moves.append({"sid": sid, "nxt": next_digest_at(f, hour, weekday, tz, now)})
    insert_ignoring_conflicts(s, m.Delivery, new)
    # A period's delivery that existed already kept its row (and its random view key): only
    # rows carrying the keys just drawn are new, and only those get matches attached.
    made: list[tuple[int, int]] = []
    keys = [row["view_key"] for row in new]
    for i in range(0, len(keys), 1000):
        q = select(m.Delivery.id, m.Delivery.subscriber_id).where(
            m.Delivery.view_key.in_(keys[i : i + 1000])
        )
        made += [(did, sid) for did, sid in s.execute(q)]
    conn = s.connection()
    if made:
        match = table_of(m.Match)
        conn.execute(
            update(match)
            .where(match.c.subscriber_id == bindparam("sid"), match.c.delivery_id.is_(None))
            .values(delivery_id=bindparam("did")),
            [{"sid": sid, "did": did} for did, sid in made],
        )
    created = [did for did, _ in made]
    fresh = {sid for _, sid in made}
    for row in new:  # the period had a delivery already: one subscriber at a time
        if row["subscriber_id"] not in fresh:
            did = _attach(s, cfg, row["subscriber_id"], row["period_key"])
            if did is not None:
                created.append(did)
    sub = table_of(m.Subscriber)
    conn.execute(
        update(sub).where(sub.c.id == bindparam("sid")).values(next_digest_at=bindparam("nxt")),
        moves,
    )
    return sorted(created)


def _attach(s: Session, cfg: _DispatchConfig, sub_id: int, key: str) -> int | None:
    ids = list(
        s.scalars(
            select(m.Match.id)
            .where(m.Match.subscriber_id == sub_id, m.Match.delivery_id.is_(None))
            .order_by(m.Match.id)
        )
    )
    opened = deliveries.open_or_attach(
        s, sub_id, "digest", key, ids, view_key=lambda: secrets.token_urlsafe(24),
        allow_empty=cfg.send_empty,
    )
    return None if opened is None else opened.delivery_id

"""Queries for operator health: rows in, `paperalerts.core.health` values out; the scheduler's
heartbeat; and the once-per-incident bookkeeping in the ``state`` table.

The heartbeat is one ``state`` row, ``last_tick`` -> ISO time (the stored name predates the word
"heartbeat"; kept so an upgrade keeps its mark), written by every scheduler run.

An announced incident is one ``state`` row, ``incident:<key>`` -> JSON {title, opened_at}. Its
primary key makes announcing a race that exactly one checker wins (`claim_incident`), and
deleting it a race that exactly one wins (`release_incident`), whatever number of web processes
and workers run the check at once.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import and_, case, delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.core.health import (
    Announced,
    PipelineCounts,
    SourceState,
    StuckDelivery,
    describe_key,
)
from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction

HEARTBEAT_KEY: Final = "last_tick"
INCIDENT_PREFIX: Final = "incident:"


def source_states(s: Session) -> list[SourceState]:
    """Every source, by name."""
    return [
        SourceState(
            name=r.name,
            kind=r.kind,
            url=r.url,
            enabled=r.enabled,
            health=r.health,
            consecutive_failures=r.consecutive_failures,
            every_seconds=r.every_seconds,
            last_run_at=r.last_run_at,
            last_success_at=r.last_success_at,
            failing_since=r.failing_since,
            last_error=r.last_error,
            last_entry_count=r.last_entry_count,
        )
        for r in s.scalars(select(m.Source).order_by(m.Source.name))
    ]


def last_heartbeat(s: Session) -> datetime | None:
    """When the scheduler last ran (None: never). Raises ValueError for a corrupt mark."""
    row = s.get(m.State, HEARTBEAT_KEY)
    return None if row is None else datetime.fromisoformat(row.value)


def record_heartbeat(factory: sessionmaker[Session], now: datetime) -> None:
    """Mark that the scheduler ran at `now` (a stale mark is the ``scheduler`` incident)."""
    with transaction(factory) as s:
        row = s.get(m.State, HEARTBEAT_KEY)
        if row is None:
            s.add(m.State(key=HEARTBEAT_KEY, value=now.isoformat()))
        else:
            row.value = now.isoformat()


def pipeline_counts(s: Session, since: datetime) -> PipelineCounts:
    """Counts along the pipeline since `since`: healthy scrapes, new-paper events, match rows,
    deliveries created and still queued or sending, sent, and created and failed."""
    d = m.Delivery

    def count(q: Any) -> int:
        return int(s.scalar(q) or 0)

    return PipelineCounts(
        # Scrapes that fetched a page: a failed or rejected one fetched nothing usable.
        fetched=count(select(func.count(m.Snapshot.id)).where(
            m.Snapshot.fetched_at >= since, m.Snapshot.status.not_in(("failed", "rejected")))),
        new=count(
            select(func.count(m.PaperEvent.id)).where(
                m.PaperEvent.kind == "new", m.PaperEvent.at >= since
            )
        ),
        matched=count(select(func.count(m.Match.id)).where(m.Match.matched_at >= since)),
        queued=count(
            select(func.count(d.id)).where(
                d.created_at >= since, d.status.in_(("queued", "sending"))
            )
        ),
        sent=count(select(func.count(d.id)).where(d.sent_at >= since, d.status == "sent")),
        failed=count(select(func.count(d.id)).where(d.created_at >= since, d.status == "failed")),
    )


def deliveries_by_status(s: Session) -> dict[str, int]:
    """All deliveries counted by status."""
    q = select(m.Delivery.status, func.count(m.Delivery.id)).group_by(m.Delivery.status)
    return {status: int(n) for status, n in s.execute(q)}


def unmatched_events(s: Session) -> int:
    """Paper events the matcher has not reached yet."""
    q = select(func.count(m.PaperEvent.id)).where(m.PaperEvent.matched_at.is_(None))
    return int(s.scalar(q) or 0)


def unmatched_lag(s: Session) -> tuple[datetime | None, int]:
    """When the oldest unmatched paper event was scraped (None: none), and how many there are."""
    q = select(func.min(m.PaperEvent.at), func.count(m.PaperEvent.id)).where(
        m.PaperEvent.matched_at.is_(None)
    )
    oldest, n = s.execute(q).one()
    return oldest, int(n or 0)


def lease_counts(s: Session, now: datetime) -> tuple[int, int]:
    """(in flight, expired): sending deliveries whose lease still runs (a worker holds them, or
    held them when it was killed: they wait for the lease to end), and those past their lease
    (nobody holds them; the sweep hands them out again)."""
    d = m.Delivery
    q = select(func.count(d.id), func.sum(case((d.lease_until < now, 1), else_=0))).where(
        d.status == "sending"
    )
    total, expired = s.execute(q).one()
    return int(total or 0) - int(expired or 0), int(expired or 0)


def stuck_deliveries(
    s: Session, now: datetime, stale_after: timedelta, limit: int = 50
) -> list[StuckDelivery]:
    """Deliveries that should have gone out and have not, oldest first: sending ones past their
    lease, queued ones due (created, or retry time reached) more than `stale_after` ago."""
    d = m.Delivery
    cutoff = now - stale_after
    q = (
        select(d, m.Subscriber.email)
        .join(m.Subscriber, m.Subscriber.id == d.subscriber_id)
        .where(
            or_(
                and_(d.status == "sending", d.lease_until < now),
                and_(d.status == "queued", d.next_attempt_at.is_(None), d.created_at <= cutoff),
                and_(d.status == "queued", d.next_attempt_at <= cutoff),
            )
        )
        .order_by(d.id)
        .limit(limit)
    )
    out = []
    for row, email in s.execute(q):
        since = (
            row.lease_until
            if row.status == "sending" and row.lease_until is not None
            else row.next_attempt_at or row.created_at
        )
        out.append(
            StuckDelivery(
                id=row.id,
                subscriber=email,
                kind=row.kind,
                status=row.status,
                attempts=row.attempts,
                since=since,
                last_error=row.last_error,
            )
        )
    return out


def announced_incidents(s: Session) -> dict[str, Announced]:
    """The incidents announced and not yet recovered, by key. A malformed record still counts
    (its recovery must be announced), with what could be read of it."""
    q = select(m.State).where(m.State.key.startswith(INCIDENT_PREFIX)).order_by(m.State.key)
    out: dict[str, Announced] = {}
    for row in s.scalars(q):
        key = row.key.removeprefix(INCIDENT_PREFIX)
        try:
            value = json.loads(row.value)
        except ValueError:
            value = {"title": row.value}
        if not isinstance(value, dict):
            value = {}
        try:
            opened_at = datetime.fromisoformat(str(value["opened_at"]))
        except (KeyError, ValueError):
            opened_at = None
        out[key] = Announced(key, str(value.get("title") or describe_key(key)), opened_at)
    return out


def claim_incident(
    factory: sessionmaker[Session], key: str, title: str, opened_at: datetime
) -> bool:
    """Record incident `key` as announced at `opened_at`. True for the one caller that recorded
    it, False when it was recorded already (by this or a concurrent checker)."""
    key = INCIDENT_PREFIX + key
    value = json.dumps({"title": title, "opened_at": opened_at.isoformat()})
    try:
        with transaction(factory) as s:
            if s.get(m.State, key) is not None:
                return False
            s.add(m.State(key=key, value=value))
    except IntegrityError:  # a concurrent checker inserted it between our read and our commit
        return False
    return True


def release_incident(factory: sessionmaker[Session], key: str) -> bool:
    """Forget an announced incident. True for the one caller that removed it."""
    with transaction(factory) as s:
        result = s.execute(
            delete(m.State)
            .where(m.State.key == INCIDENT_PREFIX + key)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0) == 1

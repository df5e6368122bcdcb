"""Every change of a delivery's state, and nothing else (DESIGN §4, §5)::

  (retry_or_give_up, pause, release_matches, resend: `edges.db.retries`)
                              claim: due, attempts < max;
     open_or_attach ──► queued ────────────────────────────► sending ──── finish ────► sent
     (a new row, or       ▲   returns Lease(attempt = fence)  │   ▲
     one never handed     │                                   │   └─ lease ran out: claimed
     out takes the        ├── retry_or_give_up: a 4xx ────────┤      again, attempt + 1
     matches along)       │   within the retry window; backoff│
                          └── pause: the relay's breaker is ──┤
                              open (the attempt given back)   ▼
                           failed ◄──── fail: a 5xx; retry_or_give_up past the window (its
                                        matches go back to the next digest); the lease ran
                                        out on the last attempt; skip: subscriber not active

Statuses stored are DESIGN's four (queued / sending / sent / failed); a skip is `failed` with a
``skipped: ...`` error and a retry is `queued` with a `next_attempt_at`.

**Fencing.** `claim` moves a row to `sending` and adds one to `attempts` in one UPDATE and hands
back that attempt number as the fence. Every later write (`finish`, `retry`, `fail`, `skip`) is
one UPDATE conditional on (id, status ``sending``, attempts = fence): a worker whose lease ran
out and was taken over by another claim changes nothing and is told ``"lost"``. The fence does
not check the lease's time: a worker that finishes late but before anyone took over still
records its send (else the sweep would send it again).

**Heartbeat.** `extend` pushes a held lease out again (fenced the same way), so a send that
takes longer than one lease keeps its row; a row retaken meanwhile is reported and not sent.

**An accepted copy wins.** `finish` after the fence was lost still marks the row `sent` (unless it
already is): the relay accepted a copy, so the row must not end `failed` or be sent by a later
holder that has not sent yet (that holder's fenced writes then change nothing). `record_sent`
retries that write on a fresh connection until the lease ends, so a database blip after the
relay's 250 does not send the message again.

**Time.** Each operation reads the caller's clock itself, inside its transaction (after any wait
for the lock), so a lease always runs from the moment its claim was written; a `now` taken at the
start of a long run would hand out leases that have already expired.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Written = Literal["done", "lost"]  # "lost": the lease was taken over; nothing was changed
_CHUNK = 500  # SQLite caps bound parameters per statement


@dataclass(frozen=True)
class Lease:
    """A claimed delivery: `attempt` is the fence every later write of this worker carries."""

    delivery_id: int
    attempt: int
    until: datetime


@dataclass(frozen=True)
class Opened:
    """Where a batch of matches went: a new delivery or an unsent one it joined."""

    delivery_id: int
    created: bool
    attached: int


def fixed_clock(now: datetime) -> Clock:
    """A clock that always reads `now` (tests and replays pin time with it)."""
    return lambda: now


def clock_of(clock: Clock | None, now: datetime | None) -> Clock:
    """`clock`, else a fixed clock at `now`; one of the two is required."""
    if clock is not None:
        return clock
    if now is None:
        raise TypeError("give a clock (or a fixed now)")
    return fixed_clock(now)


def _rowcount(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


# --- queued: opening deliveries ----------------------------------------------------------


def _same_period(sub_id: int, kind: str, key: str) -> ColumnElement[bool]:
    """Rows of this subscriber, kind and period: `key` itself or a follow-up ``key~N``."""
    return and_(
        m.Delivery.subscriber_id == sub_id,
        m.Delivery.kind == kind,
        or_(
            m.Delivery.period_key == key,
            m.Delivery.period_key.startswith(key + "~", autoescape=True),
        ),
    )


def _attach(s: Session, delivery_id: int, match_ids: Sequence[int]) -> int:
    """Point the still-undelivered matches at a delivery; how many moved."""
    n = 0
    for i in range(0, len(match_ids), _CHUNK):
        n += _rowcount(
            s.execute(
                update(m.Match)
                .where(m.Match.id.in_(match_ids[i : i + _CHUNK]), m.Match.delivery_id.is_(None))
                .values(delivery_id=delivery_id)
                .execution_options(synchronize_session=False)
            )
        )
    return n


def _free_key(s: Session, sub_id: int, kind: str, key: str) -> str:
    used = set(s.scalars(select(m.Delivery.period_key).where(_same_period(sub_id, kind, key))))
    if key not in used:
        return key
    numbers = [int(k[len(key) + 1 :]) for k in used if k[len(key) + 1 :].isdigit()]
    return f"{key}~{max(numbers, default=1) + 1}"


class _NothingToSend(Exception):
    """Rolls back a new delivery whose matches another dispatcher attached first."""


def open_or_attach(
    s: Session,
    sub_id: int,
    kind: str,
    key: str,
    match_ids: Sequence[int],
    *,
    view_key: Callable[[], str],
    allow_empty: bool = False,
) -> Opened | None:
    """Give a batch of matches a delivery that has not been sent, in the caller's transaction.

    An unsent delivery of the same period (queued and never handed out: attempts 0, so no copy of
    it can have reached anyone) takes them along; otherwise a new one opens under `key`, or
    ``key~2``, ``key~3``... when the period already has a delivery (a scrape matched in several
    batches; a digest hour moved after the day's digest went out). So no batch is ever refused
    by the period's unique key and left undelivered. None when nothing was attached or opened
    (another dispatcher took these matches first). An empty delivery opens only under `key`
    itself, and only with `allow_empty` (the ``send_empty`` digest)."""
    ids = list(match_ids)
    if ids:
        open_id = s.scalars(
            select(m.Delivery.id)
            .where(
                _same_period(sub_id, kind, key),
                m.Delivery.status == "queued",
                m.Delivery.attempts == 0,
                m.Delivery.resend_of.is_(None),
            )
            .order_by(m.Delivery.id.desc())
            .limit(1)
            # PostgreSQL: a claim of this row waits for our commit (and then sees the matches), or
            # we wait for its commit and, the row being no longer queued, open a new one.
            .with_for_update()
        ).first()
        if open_id is not None and (n := _attach(s, open_id, ids)):
            return Opened(open_id, False, n)
    for _ in range(5):  # a concurrent dispatcher may take the same free key first
        free = _free_key(s, sub_id, kind, key)
        if not ids and (free != key or not allow_empty):
            return None
        try:
            with s.begin_nested():
                d = m.Delivery(
                    subscriber_id=sub_id, kind=kind, period_key=free, view_key=view_key()
                )
                s.add(d)
                s.flush()
                n = _attach(s, d.id, ids)
                if ids and not n:
                    raise _NothingToSend
        except IntegrityError:
            continue
        except _NothingToSend:
            return None
        return Opened(d.id, True, n)
    raise RuntimeError(f"no free period key for subscriber {sub_id} {kind} {key}")


# --- sending: claims and fenced writes --------------------------------------------------


def _claimable(now: datetime) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """(due, expired): queued and due, or sending with its lease run out, as of `now`."""
    expired = and_(m.Delivery.status == "sending", m.Delivery.lease_until < now)
    due = and_(
        m.Delivery.status == "queued",
        or_(m.Delivery.next_attempt_at.is_(None), m.Delivery.next_attempt_at <= now),
    )
    return due, expired


def _give_up(max_attempts: int) -> dict[str, object]:
    return {
        "status": "failed",
        "lease_until": None,
        "last_error": f"gave up after {max_attempts} attempts (the last lease ran out)",
    }


def claim(
    factory: sessionmaker[Session],
    delivery_id: int,
    *,
    lease: timedelta,
    max_attempts: int,
    clock: Clock,
) -> Lease | None:
    """queued (and due) -> sending, or sending past its lease -> sending again, in one UPDATE
    that adds one to `attempts`: of any number of workers handed the same id, one gets it. None
    when the row is not claimable (done, not due, or held). A row whose lease ran out on its
    last allowed attempt is failed instead of being handed out forever."""
    with transaction(factory) as s:
        now = clock()
        due, expired = _claimable(now)
        row = s.execute(
            update(m.Delivery)
            .where(m.Delivery.id == delivery_id, or_(due, expired))
            .where(m.Delivery.attempts < max_attempts)
            .values(status="sending", lease_until=now + lease, attempts=m.Delivery.attempts + 1)
            .returning(m.Delivery.attempts)
            .execution_options(synchronize_session=False)
        ).first()
        if row is not None:
            return Lease(delivery_id, int(row[0]), now + lease)
        s.execute(
            update(m.Delivery)
            .where(m.Delivery.id == delivery_id, expired, m.Delivery.attempts >= max_attempts)
            .values(**_give_up(max_attempts))
            .execution_options(synchronize_session=False)
        )
        return None


def claim_many(
    factory: sessionmaker[Session],
    ids: Sequence[int],
    *,
    lease: timedelta,
    max_attempts: int,
    clock: Clock,
) -> list[Lease]:
    """`claim` for several ids in one UPDATE (the same conditions and the same fence: each row's
    attempt number after the claim); the leases this call got, in the order of `ids`. Rows whose
    lease ran out on their last allowed attempt are failed, as `claim` does."""
    if not ids:
        return []
    with transaction(factory) as s:
        now = clock()
        due, expired = _claimable(now)
        got = {
            int(i): int(a)
            for i, a in s.execute(
                update(m.Delivery)
                .where(m.Delivery.id.in_(list(ids)), or_(due, expired))
                .where(m.Delivery.attempts < max_attempts)
                .values(
                    status="sending", lease_until=now + lease, attempts=m.Delivery.attempts + 1
                )
                .returning(m.Delivery.id, m.Delivery.attempts)
                .execution_options(synchronize_session=False)
            )
        }
        s.execute(
            update(m.Delivery)
            .where(m.Delivery.id.in_(list(ids)), expired, m.Delivery.attempts >= max_attempts)
            .values(**_give_up(max_attempts))
            .execution_options(synchronize_session=False)
        )
    return [Lease(i, got[i], now + lease) for i in ids if i in got]


def _fenced(s: Session, lease: Lease, **values: object) -> Written:
    res = s.execute(
        update(m.Delivery)
        .where(
            m.Delivery.id == lease.delivery_id,
            m.Delivery.status == "sending",
            m.Delivery.attempts == lease.attempt,
        )
        .values(lease_until=None, **values)
        .execution_options(synchronize_session=False)
    )
    return "done" if _rowcount(res) else "lost"


def extend(
    factory: sessionmaker[Session], leases: Sequence[Lease], *, lease: timedelta, clock: Clock
) -> list[Lease]:
    """The heartbeat: each row of `leases` still held by this worker (sending, same fence) gets
    `lease` from now, in one UPDATE; the renewed leases, in order. A row retaken by another
    claim, or finished, is left out: its holder must not send it."""
    if not leases:
        return []
    fences = [
        and_(m.Delivery.id == x.delivery_id, m.Delivery.attempts == x.attempt) for x in leases
    ]
    with transaction(factory) as s:
        until = clock() + lease
        held = set(
            s.scalars(
                update(m.Delivery)
                .where(m.Delivery.status == "sending", or_(*fences))
                .values(lease_until=until)
                .returning(m.Delivery.id)
                .execution_options(synchronize_session=False)
            )
        )
    return [replace(x, until=until) for x in leases if x.delivery_id in held]


def finish(
    factory: sessionmaker[Session], lease: Lease, *, message_id: str, subject: str, clock: Clock
) -> Written:
    """sending -> sent: the SMTP server accepted the message. "lost" when another claim took
    the row over meanwhile; the row is then marked sent all the same (see "An accepted copy
    wins" above), unless it already was."""
    with transaction(factory) as s:
        values = {"sent_at": clock(), "message_id": message_id, "subject": subject}
        if _fenced(s, lease, status="sent", **values) == "done":
            return "done"
        s.execute(
            update(m.Delivery)
            .where(m.Delivery.id == lease.delivery_id, m.Delivery.status != "sent")
            .values(status="sent", lease_until=None, **values)
            .execution_options(synchronize_session=False)
        )
        return "lost"


def record_sent(
    factories: Sequence[sessionmaker[Session]],
    lease: Lease,
    *,
    message_id: str,
    subject: str,
    clock: Clock,
    sleep: Callable[[float], None] = time.sleep,
) -> Written:
    """`finish`, retried while the database cannot be reached: each try on the next of
    `factories` (the last repeats; give a pool-backed one there, so a try gets a fresh
    connection), with a short backoff, until the lease ends. Past the lease the error is
    raised: another worker may have taken the row and sent it again by then."""
    pause, tries = 0.1, 0
    while True:
        factory = factories[min(tries, len(factories) - 1)]
        tries += 1
        try:
            return finish(factory, lease, message_id=message_id, subject=subject, clock=clock)
        except DBAPIError as e:
            if not (e.connection_invalidated or _is_disconnect(e)) or clock() >= lease.until:
                raise
            log.warning(
                "delivery %s: recording its 250 failed (%s); retrying on a fresh connection",
                lease.delivery_id, type(e.orig).__name__,
            )
        sleep(pause)
        pause = min(pause * 2, 2.0)


def _is_disconnect(e: DBAPIError) -> bool:
    """A connection-level failure (server gone, restarting, refusing), not a statement error."""
    return isinstance(e, OperationalError | InterfaceError)


def fail(
    factory: sessionmaker[Session],
    lease: Lease,
    *,
    error: str,
    bounce_threshold: int | None = None,
) -> Written:
    """sending -> failed. With `bounce_threshold` (the address was rejected) the subscriber's
    bounce score goes up in the same transaction, and at the threshold they are suspended; a
    worker that lost its lease touches neither."""
    with transaction(factory) as s:
        written = _fenced(s, lease, status="failed", last_error=error)
        if written == "done" and bounce_threshold is not None:
            sub_id = s.scalars(
                select(m.Delivery.subscriber_id).where(m.Delivery.id == lease.delivery_id)
            ).one()
            sub = s.get_one(m.Subscriber, sub_id)
            sub.bounce_score += 1
            if sub.bounce_score >= bounce_threshold:
                sub.status = "bounced"
        return written


def skip(factory: sessionmaker[Session], lease: Lease, *, reason: str) -> Written:
    """sending -> failed with ``skipped: <reason>`` (the subscriber is no longer active)."""
    return fail(factory, lease, error=f"skipped: {reason}")


def release(factory: sessionmaker[Session], leases: Sequence[Lease]) -> list[int]:
    """sending -> queued, due now, for claimed rows this worker will not send after all (it is
    stopping), with the claim's attempt given back: another worker takes each at once instead of
    waiting out the lease. Fenced like every write (a row retaken meanwhile is left alone); the
    ids released. The releasing worker must not write to them again."""
    if not leases:
        return []
    fences = [
        and_(m.Delivery.id == x.delivery_id, m.Delivery.attempts == x.attempt) for x in leases
    ]
    with transaction(factory) as s:
        return list(
            s.scalars(
                update(m.Delivery)
                .where(m.Delivery.status == "sending", or_(*fences))
                .values(status="queued", lease_until=None, next_attempt_at=None,
                        attempts=m.Delivery.attempts - 1)
                .returning(m.Delivery.id)
                .execution_options(synchronize_session=False)
            )
        )


# --- the sweep --------------------------------------------------------------------------


def to_hand_out(s: Session, *, now: datetime, stale_after: timedelta) -> list[int]:
    """Ids to hand out (again): queued rows whose retry time has come or that waited longer
    than `stale_after` (a lost wake-up), and sending rows past their lease (a dead worker).
    Handing one out twice is harmless: only one claim wins."""
    q = (
        select(m.Delivery.id)
        .where(
            or_(
                and_(
                    m.Delivery.status == "queued",
                    m.Delivery.next_attempt_at.is_not(None),
                    m.Delivery.next_attempt_at <= now,
                ),
                and_(
                    m.Delivery.status == "queued",
                    m.Delivery.next_attempt_at.is_(None),
                    m.Delivery.created_at <= now - stale_after,
                ),
                and_(m.Delivery.status == "sending", m.Delivery.lease_until < now),
            )
        )
        .order_by(m.Delivery.id)
    )
    return list(s.scalars(q))

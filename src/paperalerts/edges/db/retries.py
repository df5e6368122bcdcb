"""The retry and failure policy's writes (the state machine is drawn in `edges.db.deliveries`,
whose fence every write here carries): a transient failure queued again within the retry window
or, past it, failed with its matches handed back to the reader's next digest; a send paused by
the relay's breaker (its attempt given back); failed deliveries resent in bulk."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.edges.db import models as m
from paperalerts.edges.db.deliveries import Clock, Lease, Written, _fenced, _rowcount
from paperalerts.edges.db.engine import transaction


def pause(factory: sessionmaker[Session], lease: Lease, *, until: datetime, why: str) -> Written:
    """sending -> queued, due at `until`, the claim's attempt given back: the send never reached
    the relay (its breaker is open), so it must not count against the delivery."""
    with transaction(factory) as s:
        return _fenced(
            s, lease, status="queued", attempts=m.Delivery.attempts - 1,
            next_attempt_at=until, last_error=why,
        )  # fmt: skip


def release_matches(s: Session, delivery_id: int) -> int:
    """Detach a failed delivery's matches, so the reader's next digest (or the next alert)
    carries them; how many. The match's unique (subscriber, paper) key still allows one
    delivery each."""
    return _rowcount(
        s.execute(
            update(m.Match)
            .where(m.Match.delivery_id == delivery_id)
            .values(delivery_id=None)
            .execution_options(synchronize_session=False)
        )
    )


@dataclass(frozen=True)
class Retried:
    """What `retry_or_give_up` wrote: "lost" (fence), when it is due again (None: it failed),
    and how many papers a failed one handed back to the next digest."""

    written: Written
    at: datetime | None = None
    released: int = 0


def retry_or_give_up(
    factory: sessionmaker[Session],
    lease: Lease,
    *,
    after: timedelta,
    error: str,
    window: timedelta,
    max_attempts: int,
    clock: Clock,
) -> Retried:
    """A transient failure: sending -> queued, due `after` from now, while the delivery is
    younger than `window` (counted from its creation) and under `max_attempts`; else
    sending -> failed and its matches go back to the next digest (the relay refused this
    attempt, so no copy of it was accepted)."""
    with transaction(factory) as s:
        now = clock()
        created = s.scalar(select(m.Delivery.created_at).where(m.Delivery.id == lease.delivery_id))
        if created is not None and now - created < window and lease.attempt < max_attempts:
            at = now + after
            written = _fenced(s, lease, status="queued", next_attempt_at=at, last_error=error)
            return Retried(written, at)
        age = "" if created is None else f" over {_hours(now - created)}"
        why = f"gave up after {lease.attempt} attempts{age}: {error}"
        if _fenced(s, lease, status="failed", last_error=why) == "lost":
            return Retried("lost")
        n = release_matches(s, lease.delivery_id)
        if n:
            s.execute(
                update(m.Delivery)
                .where(m.Delivery.id == lease.delivery_id)
                .values(last_error=f"{why} ({n} papers back to the next digest)")
                .execution_options(synchronize_session=False)
            )
        return Retried("done", None, n)


def _hours(d: timedelta) -> str:
    h = d.total_seconds() / 3600
    return f"{h:.1f} h" if h >= 1 else f"{int(d.total_seconds() // 60)} min"


# --- resending failed deliveries (admin, CLI and API share this) ---------------------------


@dataclass(frozen=True)
class Resent:
    """One failed delivery asked to be resent: the new delivery carrying its papers, or None
    and why not."""

    old: int
    new: int | None
    reason: str = ""


def failed_to_resend(
    s: Session,
    *,
    since: datetime | None = None,
    kind: str | None = None,
    subscriber_id: int | None = None,
    limit: int = 10_000,
) -> list[int]:
    """Failed digests and alerts (optionally created since `since`, of one kind, of one
    subscriber) that still hold papers and were never resent, oldest first."""
    again = select(m.Delivery.resend_of).where(m.Delivery.resend_of.is_not(None))
    held = select(m.Match.delivery_id).where(m.Match.delivery_id.is_not(None))
    q = select(m.Delivery.id).where(
        m.Delivery.status == "failed",
        m.Delivery.kind.in_(("digest", "alert") if kind is None else (kind,)),
        m.Delivery.id.not_in(again),
        m.Delivery.id.in_(held),
    )
    if since is not None:
        q = q.where(m.Delivery.created_at >= since)
    if subscriber_id is not None:
        q = q.where(m.Delivery.subscriber_id == subscriber_id)
    return list(s.scalars(q.order_by(m.Delivery.id).limit(limit)))


def resend(s: Session, ids: Sequence[int], *, now: datetime, view_key: Callable[[], str]
           ) -> list[Resent]:
    """In the caller's transaction: each failed digest or alert of `ids` gets a new queued
    delivery (``<period>~r<old id>``, `resend_of` set, due now: the next sweep sends it) and
    its papers move to it; the old row stays, for the record. Refused, with the reason: not
    found, not a failed digest or alert, resent already, or holding no papers (they went back
    to the next digest). Each row is locked, so two resends of one delivery make one."""
    out: list[Resent] = []
    for did in dict.fromkeys(ids):
        old = s.get(m.Delivery, did, with_for_update=True, populate_existing=True)
        if old is None:
            out.append(Resent(did, None, "no such delivery"))
            continue
        if old.status != "failed" or old.kind not in ("digest", "alert"):
            why = f"not a failed digest or alert ({old.kind}, {old.status})"
            out.append(Resent(did, None, why))
            continue
        if s.scalar(select(m.Delivery.id).where(m.Delivery.resend_of == did)) is not None:
            out.append(Resent(did, None, "resent already"))
            continue
        if s.scalar(select(m.Match.id).where(m.Match.delivery_id == did).limit(1)) is None:
            out.append(Resent(did, None, "holds no papers (they went back to the next digest)"))
            continue
        base = old.period_key.split("~r", 1)[0]
        new = m.Delivery(
            subscriber_id=old.subscriber_id, kind=old.kind, period_key=f"{base}~r{did}"[-64:],
            status="queued", resend_of=did, view_key=view_key(), created_at=now,
            next_attempt_at=now,
        )  # fmt: skip
        s.add(new)
        s.flush()
        s.execute(
            update(m.Match)
            .where(m.Match.delivery_id == did)
            .values(delivery_id=new.id)
            .execution_options(synchronize_session=False)
        )
        out.append(Resent(did, new.id))
    return out

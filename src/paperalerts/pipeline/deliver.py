"""Dispatch and delivery: due subscribers -> delivery rows -> claimed sends.

At least once, duplicates prevented: a send claims its row (queued -> sending with a lease) in one
UPDATE; only the claimer sends; `sent` is recorded after the SMTP server accepted. A worker that
dies mid-send leaves a lease that runs out, and the sweep hands the row out again, with the same
Message-ID (derived from the delivery id). Retries are rows with a `next_attempt_at`, picked up by
the sweep: no broker ETA or countdown is ever needed. Every state change is one fenced UPDATE in
`edges.db.deliveries` (its docstring draws the state machine); the steps here decide which.
"""

from __future__ import annotations

import logging
import random
import secrets
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Literal, cast

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.core.breaker import BreakerConfig
from paperalerts.core.message import Prepared, prepare_message
from paperalerts.core.schedule import Frequency, next_digest_at
from paperalerts.core.tokens import make_token
from paperalerts.core.verp import bounce_address, verp_address
from paperalerts.edges.db import deliveries, retries
from paperalerts.edges.db import models as m
from paperalerts.edges.db.deliveries import Clock, Lease
from paperalerts.edges.db.engine import transaction
from paperalerts.edges.mailer import Mailer
from paperalerts.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from paperalerts.pipeline import relay_gate
from paperalerts.pipeline.compose import DeliveryConfig as DeliveryConfig
from paperalerts.pipeline.compose import render_delivery as render_delivery
from paperalerts.pipeline.dispatch_digests import OnCreated, dispatch_periodic
from paperalerts.pipeline.preload import Preloaded
from paperalerts.pipeline.recommend import attach_recommendations

log = logging.getLogger(__name__)

# "lost": another worker took the delivery over mid-send; this worker's result was not recorded.
# "paused": not sent, the relay's breaker is open; queued again for when it probes, the
# attempt not counted. "released": a stopping worker gave an unsent claim back (send_batch).
SendStatus = Literal["sent", "retry", "failed", "skipped", "lost", "released", "paused"]


@dataclass(frozen=True)
class SendOutcome:
    delivery_id: int
    status: SendStatus
    detail: str = ""
    retry_at: datetime | None = None


def _new_delivery(
    s: Session, sub_id: int, kind: str, key: str, match_ids: list[int], *, empty: bool = False
) -> int | None:
    """The unsent delivery these matches now belong to (joined or opened; see
    `deliveries.open_or_attach`), or None when another dispatcher took them first."""
    opened = deliveries.open_or_attach(
        s,
        sub_id,
        kind,
        key,
        match_ids,
        view_key=lambda: secrets.token_urlsafe(24),
        allow_empty=empty,
    )
    return None if opened is None else opened.delivery_id


def _freq(sub: m.Subscriber) -> Frequency:
    return cast(Frequency, sub.frequency)  # validated when stored


def _next(sub: m.Subscriber, after: datetime) -> datetime:
    return next_digest_at(_freq(sub), sub.send_hour, sub.weekday, sub.timezone, after)


def dispatch_due_digests(
    factory: sessionmaker[Session],
    cfg: DeliveryConfig,
    *,
    now: datetime,
    on_created: OnCreated | None = None,
) -> list[int]:
    """Create the deliveries that are due and return their ids (to hand to `send_delivery`).

    Daily and weekly subscribers whose `next_digest_at` has come get a digest with every
    undelivered match (none on a period with nothing matched, unless `send_empty`); their next
    time moves on either way. That runs in bulk, a chunk of subscribers per transaction
    (`dispatch_periodic`); each committed chunk's ids go to `on_created`, so sending can start
    at once. Instant subscribers get one alert per scrape that matched. Every batch of matches
    finds a delivery: one of the same period not yet handed out takes it along, else a new one
    opens (``2024-03-12~2`` after a send hour moved past the day's digest, ``scrape-7~2`` for a
    scrape matched in several batches), so none is ever left behind."""
    created = dispatch_periodic(factory, cfg, now=now, on_created=on_created)
    alerts: list[int] = []
    with transaction(factory) as s:
        undelivered: dict[int, list[tuple[int, int | None]]] = defaultdict(list)
        q = (
            select(m.Match.subscriber_id, m.Match.id, m.PaperEvent.snapshot_id)
            .join(m.Subscriber, m.Subscriber.id == m.Match.subscriber_id)
            .outerjoin(m.PaperEvent, m.PaperEvent.id == m.Match.event_id)
            .where(m.Match.delivery_id.is_(None), m.Subscriber.frequency == "instant")
            .order_by(m.Match.id)
        )
        for sub_id, match_id, snap_id in s.execute(q):
            undelivered[sub_id].append((match_id, snap_id))
        due = s.scalars(
            select(m.Subscriber.id).where(
                m.Subscriber.status == "active", m.Subscriber.frequency == "instant"
            )
        )
        for sub_id in due:
            by_scrape: dict[str, list[int]] = defaultdict(list)
            for match_id, snap_id in undelivered.get(sub_id, []):
                key = f"scrape-{snap_id}" if snap_id else f"match-{match_id}"
                by_scrape[key].append(match_id)
            for key, ids in by_scrape.items():
                if (did := _new_delivery(s, sub_id, "alert", key, ids)) is not None:
                    alerts.append(did)
    if alerts and on_created is not None:
        on_created(alerts)
    return created + alerts


@dataclass(frozen=True)
class _Ready:
    """What the load and render steps hand to the send step."""

    msg: EmailMessage | Prepared
    subject: str
    email: str


@dataclass(frozen=True)
class _Stop:
    """Why a claimed delivery is not sent: the subscriber is inactive, or it cannot be built."""

    skip: str = ""
    problem: PermanentDeliveryError | None = None


def send_delivery(
    factory: sessionmaker[Session],
    delivery_id: int,
    *,
    mailer: Mailer,
    cfg: DeliveryConfig,
    clock: Clock | None = None,
    now: datetime | None = None,
) -> SendOutcome:
    """Claim, load, render, send and record one delivery; each step reads `clock` afresh (`now`
    instead: one fixed instant, for tests). Expected outcomes are values: "skipped" when it is
    not claimable (another worker has it, it is done) or the subscriber is inactive, "retry"
    after a transient failure (queued again with a backoff), "failed" after a permanent one or
    the last attempt, "lost" when another worker took the delivery over while this one was
    sending (this worker's result is then not recorded; see `deliveries`)."""
    clock = deliveries.clock_of(clock, now)
    lease = deliveries.claim(
        factory, delivery_id, lease=cfg.lease, max_attempts=cfg.max_attempts, clock=clock
    )
    if lease is None:
        return _not_claimable(factory, delivery_id)
    return send_claimed(factory, lease, mailer=mailer, cfg=cfg, clock=clock)


def send_claimed(
    factory: sessionmaker[Session],
    lease: Lease,
    *,
    mailer: Mailer,
    cfg: DeliveryConfig,
    clock: Clock,
    preloaded: Preloaded | None = None,
    fresh: sessionmaker[Session] | None = None,
) -> SendOutcome:
    """Load, render, send and record a delivery this worker has claimed (`lease`): the steps
    after the claim, shared by `send_delivery` and the batch sender (which passes what it read
    for its whole batch in `preloaded`, and in `fresh` a pool-backed factory for recording a
    send when its own connection broke). Right before the SMTP transaction the lease is checked
    and, with too little left, extended (`keep`); a delivery retaken meanwhile is not sent."""
    delivery_id = lease.delivery_id
    gate = relay_gate.check(factory, breaker_config(cfg), clock())
    if gate.admission == "wait" and gate.until is not None:
        return _pause(factory, lease, gate.until)
    if _may_recommend(delivery_id, cfg, preloaded):  # trained ahead: only attached here
        owner = preloaded.owner.get(delivery_id) if preloaded is not None else None
        attach_recommendations(factory, delivery_id, owner[0] if owner else None)
    try:
        ready = _load(factory, lease, cfg, clock, preloaded)
    except Exception as e:  # a bug or bad data: retried with backoff (then failed), not held
        _record_transient(factory, lease, e, cfg, clock)
        raise
    if isinstance(ready, _Stop):
        return _record_stop(factory, lease, ready, cfg)
    if not (kept := keep(factory, [lease], cfg, clock)):
        return retaken(delivery_id)
    result = _send(mailer, ready.msg)
    if isinstance(result, str | TransientDeliveryError):
        relay_gate.record(
            factory, breaker_config(cfg), clock(), accepted=isinstance(result, str),
            error=str(result),
        )  # fmt: skip
    factories = [factory] if fresh is None else [factory, fresh]
    return _record(factories, kept[0], ready, result, cfg, clock)

def breaker_config(cfg: DeliveryConfig) -> BreakerConfig:
    """The relay breaker's settings: the first pause is the first retry's backoff."""
    return BreakerConfig(
        threshold=cfg.breaker_failures,
        first_pause=min(cfg.backoff_base, cfg.breaker_pause_max),
        max_pause=cfg.breaker_pause_max,
    )


def _pause(factory: sessionmaker[Session], lease: Lease, until: datetime) -> SendOutcome:
    why = f"paused until {until:%H:%M:%S} UTC: the relay is refusing every message"
    if retries.pause(factory, lease, until=until, why=why) == "lost":
        return _lost(lease.delivery_id, "paused")
    return SendOutcome(lease.delivery_id, "paused", why, retry_at=until)


def keep(
    factory: sessionmaker[Session], leases: list[Lease], cfg: DeliveryConfig, clock: Clock
) -> list[Lease]:
    """The check before an SMTP transaction: the leases of `leases` still held, each with at
    least the longest SMTP exchange (and half a lease) left. Only when the earliest has less is
    the database asked (one fenced UPDATE extends them all); until its lease ends no claim can
    take a row over, so a lease with time left needs no round trip."""
    if not leases:
        return []
    margin = max(cfg.exchange, cfg.lease / 2)
    if min(x.until for x in leases) - clock() > margin:
        return leases
    return deliveries.extend(factory, leases, lease=cfg.lease, clock=clock)


def retaken(delivery_id: int) -> SendOutcome:
    """The outcome of a claimed delivery not sent because another claim took it over."""
    log.warning("delivery %s: its lease was taken over before the send; not sent", delivery_id)
    return SendOutcome(delivery_id, "lost", "not sent: the lease was taken over before the send")


def _may_recommend(delivery_id: int, cfg: DeliveryConfig, preloaded: Preloaded | None) -> bool:
    """False only when the batch's reads show this delivery gets no new recommendations (not a
    digest, or its subscriber has too few "more like this"); else `attach_recommendations`
    decides."""
    if preloaded is None or delivery_id not in preloaded.owner:
        return True
    sub_id, kind = preloaded.owner[delivery_id]
    enough = preloaded.positives.get(sub_id, 0) >= max(cfg.recommend_min_positives, 1)
    return kind == "digest" and cfg.recommend_max_items > 0 and enough


def _not_claimable(factory: sessionmaker[Session], delivery_id: int) -> SendOutcome:
    with factory() as s:
        d = s.get(m.Delivery, delivery_id)
        return SendOutcome(
            delivery_id, "skipped", f"not claimable ({d.status if d else 'missing'})"
        )


def _load(
    factory: sessionmaker[Session],
    lease: Lease,
    cfg: DeliveryConfig,
    clock: Clock,
    preloaded: Preloaded | None = None,
) -> _Ready | _Stop:
    """The load step (and render, which reads the matches and papers), in one read session
    closed before any write (on SQLite a write then waits for no reader)."""
    with factory() as s:
        d = s.get_one(m.Delivery, lease.delivery_id)
        sub = s.get_one(m.Subscriber, d.subscriber_id)
        if sub.status != "active":
            return _Stop(skip=f"subscriber {sub.status}")
        try:
            return _render(s, d, sub, cfg, clock(), preloaded)
        except PermanentDeliveryError as e:
            return _Stop(problem=e)


def _render(
    s: Session,
    d: m.Delivery,
    sub: m.Subscriber,
    cfg: DeliveryConfig,
    now: datetime,
    preloaded: Preloaded | None = None,
) -> _Ready:
    """The render step: the delivery's message, its Message-ID derived from the delivery id."""
    rendered = render_delivery(s, d, sub, cfg, now, preloaded)
    msg = prepare_message(  # the message as bytes: no MIME objects built per send
        rendered,
        from_addr=cfg.mail_from,
        to_addr=sub.email,
        to_name=sub.name,
        delivery_id=d.id,
        now=now,
        base_url=cfg.base_url,
        unsubscribe_token=make_token(cfg.secret, "unsubscribe", sub.id, sub.token_version),
        list_id=f"digest.{cfg.mail_domain}",
        mail_domain=cfg.mail_domain,
        return_path=verp_address(bounce_address(cfg.bounce_address, cfg.mail_domain),
                                 cfg.secret, d.id, sub.email),
    )
    return _Ready(msg, rendered.subject, sub.email)


def _send(mailer: Mailer, msg: EmailMessage | Prepared) -> str | DeliveryError:
    """The send step: the server's reply, or the delivery error (a value for the record step)."""
    try:
        return mailer.send(msg)
    except DeliveryError as e:
        return e


def _record(
    factories: list[sessionmaker[Session]],
    lease: Lease,
    ready: _Ready,
    result: str | DeliveryError,
    cfg: DeliveryConfig,
    clock: Clock,
) -> SendOutcome:
    """The record step: one fenced write of what the send step returned; a 250 is written
    through `record_sent` (retried on a fresh connection until the lease ends)."""
    did, factory = lease.delivery_id, factories[0]
    if isinstance(result, PermanentDeliveryError):
        return _record_permanent(factory, lease, result, cfg)
    if isinstance(result, DeliveryError):  # transient, or unclassified: try again later
        return _record_transient(factory, lease, result, cfg, clock)
    written = deliveries.record_sent(
        factories, lease, message_id=str(ready.msg["Message-ID"]), subject=ready.subject,
        clock=clock,
    )
    if written == "lost":
        log.warning("delivery %s sent after its lease was taken over (recorded as sent)", did)
        return SendOutcome(did, "lost", f"sent, but the lease was taken over: {result}")
    log.info("delivery %s sent to %s: %s", did, ready.email, result)
    return SendOutcome(did, "sent", result)


def _lost(delivery_id: int, what: str) -> SendOutcome:
    log.warning("delivery %s: %s, but the lease was taken over; not recorded", delivery_id, what)
    return SendOutcome(delivery_id, "lost", f"{what}; the lease was taken over")


def _record_stop(
    factory: sessionmaker[Session], lease: Lease, stop: _Stop, cfg: DeliveryConfig
) -> SendOutcome:
    if stop.problem is not None:
        return _record_permanent(factory, lease, stop.problem, cfg)
    if deliveries.skip(factory, lease, reason=stop.skip) == "lost":
        return _lost(lease.delivery_id, f"skipped ({stop.skip})")
    return SendOutcome(lease.delivery_id, "skipped", f"skipped: {stop.skip}")


def backoff(attempt: int, cfg: DeliveryConfig, rng: random.Random | None = None) -> timedelta:
    """Capped exponential backoff with equal jitter: uniform in [max(base, cap/2), cap], cap =
    min(max, base * 2**(attempt-1)). Half the wait is certain, so the delays grow as promised
    (full jitter spent 8 attempts in ~14 minutes); the other half spreads the retries."""
    base = cfg.backoff_base.total_seconds()
    cap = max(min(cfg.backoff_max.total_seconds(), base * 2 ** (attempt - 1)), base)
    return timedelta(seconds=(rng or random).uniform(max(base, cap / 2), cap))


def _record_transient(
    factory: sessionmaker[Session],
    lease: Lease,
    e: Exception,
    cfg: DeliveryConfig,
    clock: Clock,
) -> SendOutcome:
    did = lease.delivery_id
    done = retries.retry_or_give_up(
        factory, lease, after=backoff(lease.attempt, cfg), error=str(e),
        window=cfg.retry_window, max_attempts=cfg.max_attempts, clock=clock,
    )  # fmt: skip
    if done.written == "lost":
        return _lost(did, f"transient failure ({e})")
    if done.at is None:
        log.warning(
            "delivery %s failed after %s attempts (%s); %d papers back to the next digest",
            did, lease.attempt, e, done.released,
        )  # fmt: skip
        return SendOutcome(did, "failed", str(e))
    log.warning("delivery %s: transient failure (%s), retry at %s", did, e, done.at)
    return SendOutcome(did, "retry", str(e), retry_at=done.at)


def _record_permanent(
    factory: sessionmaker[Session], lease: Lease, e: PermanentDeliveryError, cfg: DeliveryConfig
) -> SendOutcome:
    threshold = cfg.bounce_threshold if e.is_address_rejection else None
    if deliveries.fail(factory, lease, error=str(e), bounce_threshold=threshold) == "lost":
        return _lost(lease.delivery_id, f"permanent failure ({e})")
    log.warning("delivery %s failed permanently: %s", lease.delivery_id, e)
    return SendOutcome(lease.delivery_id, "failed", str(e))


def sweep(factory: sessionmaker[Session], cfg: DeliveryConfig, *, now: datetime) -> list[int]:
    """Ids of deliveries to hand out (again): retries that are due, queued rows older than
    `stale_after` (a lost wake-up), sending rows past their lease (a dead worker). Handing one
    out twice is harmless: the claim lets only one send. While the relay's breaker is open,
    only the first of them (the probe's candidate): waking every paused row at each probe time
    would claim and pause them all again, for nothing."""
    with factory() as s:
        ids = deliveries.to_hand_out(s, now=now, stale_after=cfg.stale_after)
    if len(ids) > 1 and cfg.breaker_failures > 0 and relay_gate.current(factory).is_open:
        return ids[:1]
    return ids

"""Dispatch and delivery (DESIGN §2, §5): due subscribers -> delivery rows -> claimed sends.

At least once, duplicates prevented: a send claims its row (queued -> sending with a lease) in one
UPDATE; only the claimer sends; `sent` is recorded after the SMTP server accepted. A worker that
dies mid-send leaves a lease that runs out, and the sweep hands the row out again, with the same
Message-ID (derived from the delivery id). Retries are rows with a `next_attempt_at`, picked up by
the sweep: no broker ETA or countdown is ever needed.
"""

from __future__ import annotations

import logging
import random
import secrets
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, cast

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.core.digest import SourceStatus
from paperalerts.core.message import build_message, mail_domain_of
from paperalerts.core.render import Rendered
from paperalerts.core.schedule import Frequency, next_digest_at
from paperalerts.core.tokens import make_token
from paperalerts.edges.config import Settings
from paperalerts.edges.db import models as m
from paperalerts.edges.db import repo
from paperalerts.edges.db.engine import transaction
from paperalerts.edges.mailer import Mailer
from paperalerts.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from paperalerts.pipeline.digest_inputs import (
    Batch,
    LoadedDelivery,
    load_batch,
    render_loaded,
    source_statuses,
)
from paperalerts.pipeline.dispatch_digests import OnCreated, dispatch_periodic

log = logging.getLogger(__name__)

SendStatus = Literal["sent", "retry", "failed", "skipped"]


@dataclass(frozen=True)
class DeliveryConfig:
    """The settings the delivery steps use (values, so the steps never read the environment)."""

    base_url: str
    secret: str
    mail_from: str
    mail_domain: str
    postal_address: str = ""
    max_items: int = 50
    send_empty: bool = False
    bounce_threshold: int = 3
    max_attempts: int = 8
    lease: timedelta = timedelta(minutes=5)
    backoff_base: timedelta = timedelta(minutes=1)
    backoff_max: timedelta = timedelta(hours=1)
    stale_after: timedelta = timedelta(minutes=1)

    @classmethod
    def from_settings(cls, s: Settings) -> DeliveryConfig:
        return cls(
            base_url=s.base_url,
            secret=s.effective_secret_key(),
            mail_from=s.mail_from,
            mail_domain=s.mail_domain or mail_domain_of(s.mail_from),
            postal_address=s.postal_address,
            max_items=s.digest_max_items,
            send_empty=s.send_empty_digests,
            bounce_threshold=s.bounce_threshold,
            max_attempts=s.delivery_max_attempts,
            lease=timedelta(seconds=s.delivery_lease_seconds),
            backoff_base=timedelta(seconds=s.delivery_backoff_seconds),
            backoff_max=timedelta(seconds=max(s.delivery_backoff_seconds, 3600)),
            stale_after=timedelta(seconds=s.delivery_stale_seconds),
        )


@dataclass(frozen=True)
class SendOutcome:
    delivery_id: int
    status: SendStatus
    detail: str = ""
    retry_at: datetime | None = None


def _new_delivery(s: Session, sub_id: int, kind: str, key: str, match_ids: list[int]) -> int | None:
    """Create one delivery and attach the matches, in a savepoint: if the (subscriber, kind,
    period) row exists already, nothing is created (None) and the matches stay undelivered."""
    try:
        with s.begin_nested():
            d = m.Delivery(
                subscriber_id=sub_id, kind=kind, period_key=key, view_key=secrets.token_urlsafe(24)
            )
            s.add(d)
            s.flush()
    except IntegrityError:
        return None
    if match_ids:
        s.execute(
            update(m.Match)
            .where(m.Match.id.in_(match_ids), m.Match.delivery_id.is_(None))
            .values(delivery_id=d.id)
            .execution_options(synchronize_session=False)
        )
    return d.id


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

    Daily and weekly subscribers whose `next_digest_at` has come get one digest per period with
    every undelivered match (none on a period with nothing matched, unless `send_empty`); their
    next time moves on either way (in bulk, a chunk of subscribers per transaction; each
    committed chunk's ids go to `on_created`, so sending can start at once). Instant
    subscribers get one alert per scrape that matched."""
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


def _claim(
    factory: sessionmaker[Session], delivery_id: int, cfg: DeliveryConfig, now: datetime
) -> bool:
    """queued (and due) -> sending, or a sending row whose lease ran out -> sending again; in one
    UPDATE, so of two workers handed the same id only one gets the row."""
    with transaction(factory) as s:
        res = s.execute(
            update(m.Delivery)
            .where(m.Delivery.id == delivery_id)
            .where(
                or_(
                    and_(
                        m.Delivery.status == "queued",
                        or_(
                            m.Delivery.next_attempt_at.is_(None), m.Delivery.next_attempt_at <= now
                        ),
                    ),
                    and_(m.Delivery.status == "sending", m.Delivery.lease_until < now),
                )
            )
            .values(status="sending", lease_until=now + cfg.lease, attempts=m.Delivery.attempts + 1)
            .execution_options(synchronize_session=False)
        )
        return bool(res.rowcount)  # type: ignore[attr-defined]


def _sources(s: Session) -> list[SourceStatus]:
    return source_statuses(s)


def render_delivery(
    s: Session, d: m.Delivery, sub: m.Subscriber, cfg: DeliveryConfig, now: datetime
) -> Rendered:
    """The rendered digest or alert of a delivery: its attached matches, today's freshness."""
    rows = list(
        s.scalars(
            select(m.Match)  # by (subscriber, delivery): the index, not a scan of every match
            .where(m.Match.subscriber_id == d.subscriber_id, m.Match.delivery_id == d.id)
            .order_by(m.Match.id)
        )
    )
    return render_matches(s, sub, rows, cfg, now, online_url=_online_url(cfg, d.view_key))


def _online_url(cfg: DeliveryConfig, view_key: str | None) -> str:
    return f"{cfg.base_url.rstrip('/')}/d/{view_key}"


def render_matches(
    s: Session,
    sub: m.Subscriber,
    rows: list[m.Match],
    cfg: DeliveryConfig,
    now: datetime,
    *,
    online_url: str,
) -> Rendered:
    """Render the digest a subscriber would get for these match rows (also for previews)."""
    papers = repo.paper_values(s, {r.paper_id for r in rows})
    return render_loaded(sub, rows, papers, _sources(s), cfg, now, online_url=online_url)


def send_delivery(
    factory: sessionmaker[Session],
    delivery_id: int,
    *,
    mailer: Mailer,
    cfg: DeliveryConfig,
    now: datetime,
) -> SendOutcome:
    """Claim, render, send and record one delivery. Expected outcomes are values: "skipped" when
    another worker has it or it is done, "retry" after a transient failure (the row is queued
    again with a backoff), "failed" after a permanent one or the last attempt."""
    if not _claim(factory, delivery_id, cfg, now):
        return skipped(factory, [delivery_id])[0]
    with factory() as s:
        batch = load_batch(s, [delivery_id])
    # The read session is closed before any write: on SQLite a write waits for no reader.
    if delivery_id not in batch.deliveries:  # deleted (with its subscriber) since the claim
        return SendOutcome(delivery_id, "skipped", "not claimable (missing)")
    return send_loaded(
        factory, batch.deliveries[delivery_id], batch, mailer=mailer, cfg=cfg, now=now
    )


def skipped(factory: sessionmaker[Session], ids: list[int]) -> list[SendOutcome]:
    """Outcomes for deliveries that could not be claimed, saying what state they are in."""
    with factory() as s:
        q = select(m.Delivery.id, m.Delivery.status).where(m.Delivery.id.in_(ids))
        states = {i: st for i, st in s.execute(q)}
    return [SendOutcome(i, "skipped", f"not claimable ({states.get(i, 'missing')})") for i in ids]


def send_loaded(
    factory: sessionmaker[Session],
    d: LoadedDelivery,
    batch: Batch,
    *,
    mailer: Mailer,
    cfg: DeliveryConfig,
    now: datetime,
) -> SendOutcome:
    """Render, send and record one claimed delivery whose inputs are loaded (`d.attempts` is
    the count after this claim)."""
    sub = d.recipient
    if sub.status != "active":
        detail = f"skipped: subscriber {sub.status}"
        _finish(factory, d.id, status="failed", last_error=detail)
        return SendOutcome(d.id, "skipped", detail)
    try:
        rendered = render_loaded(
            sub,
            d.rows,
            batch.papers,
            batch.sources,
            cfg,
            now,
            online_url=_online_url(cfg, d.view_key),
        )
        msg = build_message(
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
        )
    except PermanentDeliveryError as e:
        return _permanent(factory, d.id, sub.id, e, cfg)
    try:
        reply = mailer.send(msg)
    except TransientDeliveryError as e:
        return _transient(factory, d.id, d.attempts, e, cfg, now)
    except PermanentDeliveryError as e:
        return _permanent(factory, d.id, sub.id, e, cfg)
    _finish(
        factory,
        d.id,
        status="sent",
        sent_at=now,
        message_id=str(msg["Message-ID"]),
        subject=rendered.subject,
    )
    log.info("delivery %s sent to %s: %s", d.id, sub.email, reply)
    return SendOutcome(d.id, "sent", reply)


def _finish(factory: sessionmaker[Session], delivery_id: int, **values: object) -> None:
    with transaction(factory) as s:
        s.execute(
            update(m.Delivery)
            .where(m.Delivery.id == delivery_id)
            .values(lease_until=None, **values)
            .execution_options(synchronize_session=False)
        )


def backoff(attempt: int, cfg: DeliveryConfig, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with full jitter: uniform in [base, min(max, base * 2**(attempt-1))]."""
    cap = min(
        cfg.backoff_max.total_seconds(), cfg.backoff_base.total_seconds() * 2 ** (attempt - 1)
    )
    low = cfg.backoff_base.total_seconds()
    return timedelta(seconds=(rng or random).uniform(low, max(low, cap)))


def _transient(
    factory: sessionmaker[Session],
    delivery_id: int,
    attempts: int,
    e: DeliveryError,
    cfg: DeliveryConfig,
    now: datetime,
) -> SendOutcome:
    if attempts >= cfg.max_attempts:
        _finish(factory, delivery_id, status="failed", last_error=f"gave up after {attempts}: {e}")
        return SendOutcome(delivery_id, "failed", str(e))
    at = now + backoff(attempts, cfg)
    _finish(factory, delivery_id, status="queued", next_attempt_at=at, last_error=str(e))
    log.warning("delivery %s: transient failure (%s), retry at %s", delivery_id, e, at)
    return SendOutcome(delivery_id, "retry", str(e), retry_at=at)


def _permanent(
    factory: sessionmaker[Session],
    delivery_id: int,
    sub_id: int,
    e: PermanentDeliveryError,
    cfg: DeliveryConfig,
) -> SendOutcome:
    with transaction(factory) as s:
        s.execute(
            update(m.Delivery)
            .where(m.Delivery.id == delivery_id)
            .values(status="failed", lease_until=None, last_error=str(e))
            .execution_options(synchronize_session=False)
        )
        if e.is_address_rejection:
            sub = s.get_one(m.Subscriber, sub_id)
            sub.bounce_score += 1
            if sub.bounce_score >= cfg.bounce_threshold:
                sub.status = "bounced"
    log.warning("delivery %s failed permanently: %s", delivery_id, e)
    return SendOutcome(delivery_id, "failed", str(e))


def sweep(factory: sessionmaker[Session], cfg: DeliveryConfig, *, now: datetime) -> list[int]:
    """Ids of deliveries to hand out (again): queued ones whose retry time has come or that have
    waited longer than `stale_after` (a lost wake-up), and sending ones past their lease (a dead
    worker). Handing one out twice is harmless: the claim lets only one send."""
    with factory() as s:
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
                        m.Delivery.created_at <= now - cfg.stale_after,
                    ),
                    and_(m.Delivery.status == "sending", m.Delivery.lease_until < now),
                )
            )
            .order_by(m.Delivery.id)
        )
        return list(s.scalars(q))

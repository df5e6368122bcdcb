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

from paperalerts.core.digest import MatchedItem, SourceStatus, SubscriberInfo, build_digest
from paperalerts.core.message import build_message, mail_domain_of
from paperalerts.core.render import Footer, Rendered, render_digest
from paperalerts.core.schedule import Frequency, next_digest_at, period_key
from paperalerts.core.subscribers import subscriber_links
from paperalerts.core.tokens import make_token
from paperalerts.edges.config import Settings
from paperalerts.edges.db import models as m
from paperalerts.edges.db import repo
from paperalerts.edges.db.engine import transaction
from paperalerts.edges.mailer import Mailer
from paperalerts.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from paperalerts.pipeline.recommend import (
    RecommendConfig,
    decorate,
    prepare_recommendations,
    without_muted,
)

log = logging.getLogger(__name__)

SendStatus = Literal["sent", "retry", "failed", "skipped"]
# Topics share the digest's rule-group numbering with personal rules; keep them apart.
TOPIC_GROUP_OFFSET = 1_000_000_000


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
    recommend_min_positives: int = 3
    recommend_max_items: int = 5

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
            recommend_min_positives=s.recommend_min_positives,
            recommend_max_items=s.recommend_max_items,
        )

    def recommend(self) -> RecommendConfig:
        return RecommendConfig(self.base_url, self.secret, self.recommend_min_positives,
                               self.recommend_max_items)


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
    factory: sessionmaker[Session], cfg: DeliveryConfig, *, now: datetime
) -> list[int]:
    """Create the deliveries that are due and return their ids (to hand to `send_delivery`).

    Daily and weekly subscribers whose `next_digest_at` has come get one digest per period with
    every undelivered match (none on a period with nothing matched, unless `send_empty`); their
    next time moves on either way. Instant subscribers get one alert per scrape that matched."""
    created: list[int] = []
    with transaction(factory) as s:
        undelivered: dict[int, list[tuple[int, int | None]]] = defaultdict(list)
        q = (
            select(m.Match.subscriber_id, m.Match.id, m.PaperEvent.snapshot_id)
            .outerjoin(m.PaperEvent, m.PaperEvent.id == m.Match.event_id)
            .where(m.Match.delivery_id.is_(None))
            .order_by(m.Match.id)
        )
        for sub_id, match_id, snap_id in s.execute(q):
            undelivered[sub_id].append((match_id, snap_id))
        due = s.scalars(
            select(m.Subscriber).where(
                m.Subscriber.status == "active",
                or_(
                    m.Subscriber.frequency == "instant",
                    m.Subscriber.next_digest_at.is_(None),
                    m.Subscriber.next_digest_at <= now,
                ),
            )
        )
        for sub in due:
            pending = undelivered.get(sub.id, [])
            if sub.frequency == "instant":
                by_scrape: dict[str, list[int]] = defaultdict(list)
                for match_id, snap_id in pending:
                    key = f"scrape-{snap_id}" if snap_id else f"match-{match_id}"
                    by_scrape[key].append(match_id)
                for key, ids in by_scrape.items():
                    if (did := _new_delivery(s, sub.id, "alert", key, ids)) is not None:
                        created.append(did)
                continue
            if sub.next_digest_at is None:  # never scheduled: schedule, send nothing yet
                sub.next_digest_at = _next(sub, now)
                continue
            key = period_key(_freq(sub), sub.timezone, sub.next_digest_at)
            if pending or cfg.send_empty:
                did = _new_delivery(s, sub.id, "digest", key, [i for i, _ in pending])
                if did is not None:
                    created.append(did)
            sub.next_digest_at = _next(sub, now)
    return created


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
    return [
        SourceStatus(
            name=src.name,
            kind=src.kind,
            health=src.health,  # type: ignore[arg-type]
            last_success_at=src.last_success_at,
            failing_since=src.failing_since,
            new_count=src.last_new_count,
            quiet_day=src.quiet_day,
        )
        for src in s.scalars(
            select(m.Source).where(m.Source.enabled.is_(True)).order_by(m.Source.name)
        )
    ]


def render_delivery(
    s: Session, d: m.Delivery, sub: m.Subscriber, cfg: DeliveryConfig, now: datetime
) -> Rendered:
    """The rendered digest or alert of a delivery: its attached matches, today's freshness."""
    rows = list(s.scalars(select(m.Match).where(m.Match.delivery_id == d.id).order_by(m.Match.id)))
    return render_matches(
        s, sub, rows, cfg, now, online_url=f"{cfg.base_url.rstrip('/')}/d/{d.view_key}",
        delivery_id=d.id,
    )


def render_matches(
    s: Session,
    sub: m.Subscriber,
    rows: list[m.Match],
    cfg: DeliveryConfig,
    now: datetime,
    *,
    online_url: str,
    delivery_id: int | None = None,
) -> Rendered:
    """Render the digest a subscriber would get for these match rows (also for previews). With
    a `delivery_id`, each paper gets its feedback links and the delivery its recommendations."""
    papers = repo.paper_values(s, {r.paper_id for r in rows})
    items: list[MatchedItem] = []
    for r in rows:
        if r.paper_id not in papers:
            continue
        for e in r.explanation.get("rules", []):
            gid = (
                e["rule_id"]
                if e.get("rule_id") is not None
                else TOPIC_GROUP_OFFSET + int(e["topic_id"])
            )
            items.append(
                MatchedItem(
                    paper=papers[r.paper_id],
                    rule_id=gid,
                    rule_name=e.get("name") or e.get("query", ""),
                    explanation=e,
                    matched_at=r.matched_at,
                )
            )
    info = SubscriberInfo(
        email=sub.email, name=sub.name, frequency=_freq(sub), timezone=sub.timezone
    )
    digest = build_digest(
        info, without_muted(s, sub.id, items), _sources(s), now=now, online_url=online_url,
        max_items=cfg.max_items,
    )
    digest = decorate(s, sub, digest, cfg.recommend(), delivery_id=delivery_id, now=now)
    links = subscriber_links(cfg.base_url, cfg.secret, sub.id, sub.token_version)
    footer = Footer(
        reason=f"{sub.email} subscribed to paperalerts, and these papers matched your rules.",
        postal_address=cfg.postal_address,
        manage_url=links.manage,
        unsubscribe_url=links.unsubscribe,
    )
    return render_digest(digest, footer)


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
        with factory() as s:
            d = s.get(m.Delivery, delivery_id)
            return SendOutcome(
                delivery_id, "skipped", f"not claimable ({d.status if d else 'missing'})"
            )
    prepare_recommendations(factory, delivery_id, cfg.recommend(), now=now)
    with factory() as s:
        d = s.get_one(m.Delivery, delivery_id)
        sub = s.get_one(m.Subscriber, d.subscriber_id)
        attempts, sub_id, sub_email, sub_status = d.attempts, sub.id, sub.email, sub.status
        problem: PermanentDeliveryError | None = None
        if sub_status == "active":
            try:
                rendered = render_delivery(s, d, sub, cfg, now)
                token = make_token(cfg.secret, "unsubscribe", sub.id, sub.token_version)
                msg = build_message(
                    rendered,
                    from_addr=cfg.mail_from,
                    to_addr=sub.email,
                    to_name=sub.name,
                    delivery_id=d.id,
                    now=now,
                    base_url=cfg.base_url,
                    unsubscribe_token=token,
                    list_id=f"digest.{cfg.mail_domain}",
                    mail_domain=cfg.mail_domain,
                )
            except PermanentDeliveryError as e:
                problem = e
    # The read session is closed before any write: on SQLite a write waits for no reader.
    if sub_status != "active":
        detail = f"skipped: subscriber {sub_status}"
        _finish(factory, delivery_id, status="failed", last_error=detail)
        return SendOutcome(delivery_id, "skipped", detail)
    if problem is not None:
        return _permanent(factory, delivery_id, sub_id, problem, cfg)
    try:
        reply = mailer.send(msg)
    except TransientDeliveryError as e:
        return _transient(factory, delivery_id, attempts, e, cfg, now)
    except PermanentDeliveryError as e:
        return _permanent(factory, delivery_id, sub_id, e, cfg)
    _finish(
        factory,
        delivery_id,
        status="sent",
        sent_at=now,
        message_id=str(msg["Message-ID"]),
        subject=rendered.subject,
    )
    log.info("delivery %s sent to %s: %s", delivery_id, sub_email, reply)
    return SendOutcome(delivery_id, "sent", reply)


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

"""Sending many deliveries in one call: what a worker does with a chunk of delivery ids.

The per-delivery promise is that of `send_delivery` (claim, render, send, record; a claim lets
only one worker send), with the per-delivery overheads taken out: a few deliveries are claimed
in one UPDATE (with a fresh `now` from the clock) and their inputs loaded together in one read
session (`load_batch`), the batch keeps one database connection, and every message goes over the
mailer's one reused connection. Claims are taken a few at a time, just before sending, so a
claimed delivery never waits behind a long batch while its lease runs out. Each "sent" is still
recorded on its own, right after the server accepted it: a crash re-sends at most one email.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import Engine, and_, or_, update
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.edges.mailer import Mailer
from paperalerts.pipeline.deliver import DeliveryConfig, SendOutcome, send_loaded, skipped
from paperalerts.pipeline.digest_inputs import load_batch

CLAIM_AHEAD = 25  # deliveries claimed and loaded together


def send_deliveries(
    factory: sessionmaker[Session],
    ids: Sequence[int],
    *,
    mailer: Mailer,
    cfg: DeliveryConfig,
    clock: Callable[[], datetime],
    claim_ahead: int = CLAIM_AHEAD,
) -> list[SendOutcome]:
    """Claim, render, send and record each delivery of `ids` (each id once, in order); one
    outcome per id, as `send_delivery` would give."""
    todo = list(dict.fromkeys(ids))
    engine = factory.kw.get("bind")
    if not isinstance(engine, Engine) or engine.dialect.name == "sqlite":
        return _send(factory, todo, mailer, cfg, clock, claim_ahead)
    # One server connection for the whole batch: a session per step would check one out of the
    # pool each time (a pre-ping and a reset each), round trips per delivery for nothing. (A
    # SQLite connection costs nothing to check out, and its write lock wants a fresh BEGIN.)
    with engine.connect() as conn:
        return _send(
            sessionmaker(bind=conn, expire_on_commit=False), todo, mailer, cfg, clock, claim_ahead
        )


def _send(
    factory: sessionmaker[Session],
    todo: list[int],
    mailer: Mailer,
    cfg: DeliveryConfig,
    clock: Callable[[], datetime],
    claim_ahead: int,
) -> list[SendOutcome]:
    out: list[SendOutcome] = []
    for lo in range(0, len(todo), max(1, claim_ahead)):
        part = todo[lo : lo + max(1, claim_ahead)]
        claimed = claim_many(factory, part, cfg, clock())
        got = set(claimed)
        lost = [i for i in part if i not in got]
        if lost:
            out += skipped(factory, lost)
        if not claimed:
            continue
        with factory() as s:
            batch = load_batch(s, claimed)
        # The read session is closed before any write: on SQLite a write waits for no reader.
        for i in claimed:
            d = batch.deliveries.get(i)
            if d is None:  # deleted (with its subscriber) since the claim
                out.append(SendOutcome(i, "skipped", "not claimable (missing)"))
                continue
            out.append(send_loaded(factory, d, batch, mailer=mailer, cfg=cfg, now=clock()))
    return out


def claim_many(
    factory: sessionmaker[Session], ids: list[int], cfg: DeliveryConfig, now: datetime
) -> list[int]:
    """`deliver._claim` for several ids in one UPDATE (the same condition: queued and due, or
    sending with its lease run out); the ids this call claimed, in the order given."""
    with transaction(factory) as s:
        res = s.execute(
            update(m.Delivery)
            .where(m.Delivery.id.in_(ids))
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
            .returning(m.Delivery.id)
            .execution_options(synchronize_session=False)
        )
        got = set(res.scalars())
    return [i for i in ids if i in got]

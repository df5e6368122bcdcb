"""Sending many deliveries in one call: what a worker does with a chunk of delivery ids.

The per-delivery promise is that of `send_delivery` (claim, render, send, record; only the
claimer sends, and every later write is fenced by its lease), with the per-delivery overheads
taken out: a few deliveries are claimed in one UPDATE (`deliveries.claim_many`, a fresh `now`
from the clock), the batch keeps one database connection, and every message goes over the
mailer's one reused SMTP connection. Claims are taken a few at a time, just before sending, so
a claimed delivery never waits behind a long batch while its lease runs out. Each "sent" is
still recorded on its own, right after the server accepted it: a crash re-sends at most one.

**Stopping.** `stop` is asked before each claim and each send: once it says yes (the worker is
shutting down), the message in flight has been recorded, and the rest of the batch is released
at once (`deliveries.release`: its claimed rows queued again, due now) with the outcome
``released``, instead of being sent past the stop's grace period or killed with its leases held.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.edges.db import deliveries
from paperalerts.edges.db import models as m
from paperalerts.edges.db.deliveries import Clock
from paperalerts.edges.mailer import Mailer
from paperalerts.pipeline.deliver import DeliveryConfig, SendOutcome, send_claimed
from paperalerts.pipeline.preload import preload

CLAIM_AHEAD = 25  # deliveries claimed together


def send_deliveries(
    factory: sessionmaker[Session],
    ids: Sequence[int],
    *,
    mailer: Mailer,
    cfg: DeliveryConfig,
    clock: Clock,
    claim_ahead: int = CLAIM_AHEAD,
    stop: Callable[[], bool] = lambda: False,
) -> list[SendOutcome]:
    """Claim, render, send and record each delivery of `ids` (each id once, in order); one
    outcome per id, as `send_delivery` would give, or ``released`` for those left when `stop`
    said yes."""
    todo = list(dict.fromkeys(ids))
    engine = factory.kw.get("bind")
    if not isinstance(engine, Engine) or engine.dialect.name == "sqlite":
        return _send(factory, todo, mailer, cfg, clock, claim_ahead, stop)
    # One server connection for the whole batch: a session per step would check one out of the
    # pool each time (a pre-ping and a reset each), round trips per delivery for nothing. (A
    # SQLite connection costs nothing to check out, and its write lock wants a fresh BEGIN.)
    with engine.connect() as conn:
        return _send(
            sessionmaker(bind=conn, expire_on_commit=False), todo, mailer, cfg, clock, claim_ahead,
            stop,
        )


def _send(
    factory: sessionmaker[Session],
    todo: list[int],
    mailer: Mailer,
    cfg: DeliveryConfig,
    clock: Clock,
    claim_ahead: int,
    stop: Callable[[], bool],
) -> list[SendOutcome]:
    out: list[SendOutcome] = []
    # Claimed rows wait behind the sends before them with their leases running, so claim no
    # more ahead than a lease covers at a generous 10 s a send (a 5-minute lease: 25; a lease
    # of seconds, as in tests: one at a time). A sweep then never sees one of them as expired.
    step = max(1, min(claim_ahead, int(cfg.lease.total_seconds() // 10)))
    for lo in range(0, len(todo), step):
        part = todo[lo : lo + step]
        if stop():
            return out + released(factory, [], todo[lo:])
        leases = deliveries.claim_many(
            factory, part, lease=cfg.lease, max_attempts=cfg.max_attempts, clock=clock
        )
        got = {lease.delivery_id for lease in leases}
        out += _skipped(factory, [i for i in part if i not in got])
        if not leases:
            continue
        with factory() as s:
            shared = preload(s, [lease.delivery_id for lease in leases])
        # The read session is closed before any write: on SQLite a write waits for no reader.
        for n, lease in enumerate(leases):
            if stop():
                return out + released(factory, leases[n:], todo[lo + len(part) :])
            out.append(
                send_claimed(factory, lease, mailer=mailer, cfg=cfg, clock=clock, preloaded=shared)
            )
    return out


def released(
    factory: sessionmaker[Session], claimed: Sequence[deliveries.Lease], unclaimed: Sequence[int]
) -> list[SendOutcome]:
    """The stop hook's answer: give back the `claimed` rows not sent yet (queued again, due now,
    the claim's attempt returned) and report them and the `unclaimed` ones as ``released``."""
    deliveries.release(factory, claimed)
    ids = [lease.delivery_id for lease in claimed] + list(unclaimed)
    return [SendOutcome(i, "released", "the worker is stopping") for i in ids]


def _skipped(factory: sessionmaker[Session], ids: list[int]) -> list[SendOutcome]:
    """Outcomes for deliveries that could not be claimed, saying what state they are in."""
    if not ids:
        return []
    with factory() as s:
        q = select(m.Delivery.id, m.Delivery.status).where(m.Delivery.id.in_(ids))
        states = {i: st for i, st in s.execute(q)}
    return [SendOutcome(i, "skipped", f"not claimable ({states.get(i, 'missing')})") for i in ids]

"""Sending many deliveries in one call: what a worker does with a chunk of delivery ids.

The per-delivery promise is that of `send_delivery` (claim, render, send, record; only the
claimer sends, and every later write is fenced by its lease), with the per-delivery overheads
taken out: a few deliveries are claimed in one UPDATE (`deliveries.claim_many`, a fresh `now`
from the clock), the batch keeps one database connection, and every message goes over the
mailer's one reused SMTP connection. Each "sent" is still recorded on its own, right after the
server accepted it (retried on a fresh connection while the database blips): a crash re-sends at
most one.

**The lease covers the send.** A chunk's sends are booked with the rate limiter first and its
first turn waited for before the claim, so the pacing wait is spent holding nothing; a chunk is
never larger than the rate lets go out in half a lease; before each SMTP transaction the chunk's
leases are checked and, when short of time, extended together (fenced: a row retaken meanwhile
is not sent).

**Stopping.** `stop` is asked before each claim and each send: once it says yes (the worker is
shutting down), the message in flight has been recorded, and the rest of the batch is released
at once (`deliveries.release`: its claimed rows queued again, due now) with the outcome
``released``, instead of being sent past the stop's grace period or killed with its leases held.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.edges.db import deliveries
from paperalerts.edges.db import models as m
from paperalerts.edges.db.deliveries import Clock
from paperalerts.edges.mailer import Mailer, Paced
from paperalerts.pipeline.deliver import DeliveryConfig, SendOutcome, keep, retaken, send_claimed
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
        return _send(factory, todo, mailer, cfg, clock, claim_ahead, stop, None)
    # One server connection for the whole batch: a session per step would check one out of the
    # pool each time (a pre-ping and a reset each), round trips per delivery for nothing. (A
    # SQLite connection costs nothing to check out, and its write lock wants a fresh BEGIN.)
    # Recording a 250 falls back to the pool when this connection breaks.
    with engine.connect() as conn:
        return _send(
            sessionmaker(bind=conn, expire_on_commit=False), todo, mailer, cfg, clock, claim_ahead,
            stop, factory,
        )


def chunk_size(cfg: DeliveryConfig, rate: float | None, claim_ahead: int = CLAIM_AHEAD) -> int:
    """How many deliveries to claim together: no more than the rate sends in half a lease (the
    last of them then starts well inside the lease even if the heartbeat never ran), nor than a
    lease covers at a generous 10 s a send when unpaced; at least one."""
    lease = cfg.lease.total_seconds()
    return max(1, min(claim_ahead, int(rate * lease / 2 if rate else lease / 10)))


def _send(
    factory: sessionmaker[Session],
    todo: list[int],
    mailer: Mailer,
    cfg: DeliveryConfig,
    clock: Clock,
    claim_ahead: int,
    stop: Callable[[], bool],
    fresh: sessionmaker[Session] | None,
) -> list[SendOutcome]:
    out: list[SendOutcome] = []
    paced = mailer if isinstance(mailer, Paced) and mailer.rate else None
    step = chunk_size(cfg, paced.rate if paced else None, claim_ahead)
    for lo in range(0, len(todo), step):
        part = todo[lo : lo + step]
        if stop():
            return out + released(factory, [], todo[lo:])
        turns = paced.book(len(part)) if paced else []
        if turns:  # the rate-limiter wait, before the claim: nothing is held while it runs
            _sleep_until(turns[0])
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
        held = leases  # claimed and not sent yet
        for n, lease in enumerate(leases):
            if n < len(turns):
                _sleep_until(turns[n])
            if stop():
                mine_ids = {x.delivery_id for x in held}
                gone = [retaken(x.delivery_id) for x in leases[n:] if x.delivery_id not in mine_ids]
                return out + gone + released(factory, held, todo[lo + len(part) :])
            # The heartbeat, for the whole chunk at once: rows still waiting keep their leases.
            held = keep(factory, held, cfg, clock)
            mine = next((x for x in held if x.delivery_id == lease.delivery_id), None)
            if mine is None:  # retaken while it waited: another holder sends it
                out.append(retaken(lease.delivery_id))
                continue
            out.append(
                send_claimed(
                    factory, mine, mailer=mailer, cfg=cfg, clock=clock, preloaded=shared,
                    fresh=fresh,
                )
            )
            held = [x for x in held if x.delivery_id != lease.delivery_id]
    return out


def _sleep_until(at: float) -> None:
    if (wait := at - time.monotonic()) > 0:
        time.sleep(wait)


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

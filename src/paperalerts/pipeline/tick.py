"""One beat tick, in-process: due scrapes, matching, due digests and their sending, the sweep.

`paperalerts tick` runs this (cron-only installs, tests, operators); the Celery beat tick does the
same steps spread over queues.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.edges.mailer import Mailer
from paperalerts.pipeline.deliver import (
    DeliveryConfig,
    SendOutcome,
    dispatch_due_digests,
    sweep,
)
from paperalerts.pipeline.health_alerts import CheckOutcome, HealthConfig, check_health
from paperalerts.pipeline.match import IndexCache, MatchOutcome, match_new_events
from paperalerts.pipeline.scrape import FetcherLike, ScrapeOutcome, claim_due_sources, scrape_source
from paperalerts.pipeline.send_batch import send_deliveries

LAST_TICK = "last_tick"


@dataclass
class TickOutcome:
    scrapes: list[ScrapeOutcome] = field(default_factory=list)
    matched: MatchOutcome | None = None
    dispatched: list[int] = field(default_factory=list)
    sends: list[SendOutcome] = field(default_factory=list)
    health: CheckOutcome | None = None


def record_tick(factory: sessionmaker[Session], now: datetime) -> None:
    """Remember when a tick last ran (operator health: beat down shows as a stale mark)."""
    with transaction(factory) as s:
        row = s.get(m.State, LAST_TICK)
        if row is None:
            s.add(m.State(key=LAST_TICK, value=now.isoformat()))
        else:
            row.value = now.isoformat()


def send_due(
    factory: sessionmaker[Session],
    ids: list[int],
    *,
    mailer: Mailer,
    cfg: DeliveryConfig,
    now: datetime,
) -> list[SendOutcome]:
    """Send the given deliveries plus whatever the sweep finds, each id once."""
    todo = sorted(set(ids) | set(sweep(factory, cfg, now=now)))
    return send_deliveries(factory, todo, mailer=mailer, cfg=cfg, clock=lambda: now)


def tick(
    factory: sessionmaker[Session],
    *,
    fetcher: FetcherLike,
    mailer: Mailer,
    cfg: DeliveryConfig,
    now: datetime,
    failing_after: int = 3,
    cache: IndexCache | None = None,
    health: HealthConfig | None = None,
) -> TickOutcome:
    out = TickOutcome()
    record_tick(factory, now)
    for sid in claim_due_sources(factory, now):
        out.scrapes.append(
            scrape_source(factory, sid, fetcher=fetcher, now=now, failing_after=failing_after)
        )
    out.matched = match_new_events(factory, now=now, cache=cache)
    out.dispatched = dispatch_due_digests(factory, cfg, now=now)
    out.sends = send_due(factory, out.dispatched, mailer=mailer, cfg=cfg, now=now)
    if health is not None:  # operator health: failing sources, the tick back after an outage
        out.health = check_health(factory, mailer, health, now)
    return out

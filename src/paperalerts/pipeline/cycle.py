"""One scheduler cycle, in-process: due scrapes, matching, due digests and their sending, the
sweep, the health check.

The word "tick" used to name five things; each now has its own name:

- a *cycle* (`run_cycle`, here): every step once, in this process. The ``paperalerts tick``
  command runs one (cron-only installs, tests, operators); the name of the command is kept.
- the *beat fan-out* (`paperalerts.faces.tasks.beat_fanout`, Celery task name
  ``paperalerts.tick``): what beat sends every TICK_SECONDS; it enqueues the same steps on
  their queues instead of running them.
- the *heartbeat* (`health_repo.record_heartbeat` / `last_heartbeat`): the mark both of the above
  leave, so operator health can tell a stopped scheduler.
- the *scheduler* incident (`paperalerts.core.health.scheduler_incident`): a stale heartbeat.
- `run`'s *housekeeping* (`paperalerts.faces.cli_run`): its once-a-minute broker pruning and
  health check.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from paperalerts.edges.db.deliveries import Clock
from paperalerts.edges.db.health_repo import record_heartbeat
from paperalerts.edges.mailbox import Mailbox, MailboxError
from paperalerts.edges.mailer import Mailer
from paperalerts.pipeline.deliver import (
    DeliveryConfig,
    SendOutcome,
    dispatch_due_digests,
    sweep,
)
from paperalerts.pipeline.health import CheckOutcome, HealthConfig, check_health
from paperalerts.pipeline.mailbox import MailboxConfig, PollOutcome, poll_mailbox
from paperalerts.pipeline.match import IndexCache, MatchOutcome, match_new_events
from paperalerts.pipeline.recommend import TrainOutcome, train_recommendations
from paperalerts.pipeline.scrape import FetcherLike, ScrapeOutcome, claim_due_sources, scrape_source
from paperalerts.pipeline.send_batch import send_deliveries

log = logging.getLogger(__name__)


@dataclass
class CycleOutcome:
    """What one cycle did, step by step."""

    scrapes: list[ScrapeOutcome] = field(default_factory=list)
    matched: MatchOutcome | None = None
    recommended: TrainOutcome | None = None
    dispatched: list[int] = field(default_factory=list)
    sends: list[SendOutcome] = field(default_factory=list)
    health: CheckOutcome | None = None
    mailbox: PollOutcome | None = None


def send_due(
    factory: sessionmaker[Session],
    ids: list[int],
    *,
    mailer: Mailer,
    cfg: DeliveryConfig,
    clock: Clock,
) -> list[SendOutcome]:
    """Send the given deliveries plus whatever the sweep finds, each id once. Every send reads
    the clock for itself: a run of slow sends must not claim rows with already-expired leases
    (which a concurrent sweep would hand out again)."""
    todo = sorted(set(ids) | set(sweep(factory, cfg, now=clock())))
    return send_deliveries(factory, todo, mailer=mailer, cfg=cfg, clock=clock)


def run_cycle(
    factory: sessionmaker[Session],
    *,
    fetcher: FetcherLike,
    mailer: Mailer,
    cfg: DeliveryConfig,
    clock: Clock,
    failing_after: int = 3,
    cache: IndexCache | None = None,
    health: HealthConfig | None = None,
    mailbox: tuple[Mailbox, MailboxConfig] | None = None,
) -> CycleOutcome:
    """Every step once: heartbeat, the mailbox (unsubscribes and bounces first, so nothing is
    sent to them), due scrapes, matching, recommendations (when papers came in), dispatch,
    sending (with the sweep's leftovers) and, given a HealthConfig, the operator health check.
    Every step reads `clock` when it starts (a cycle of slow scrapes and sends takes a while;
    one `now` for all of it would date the later steps in the past)."""
    out = CycleOutcome()
    record_heartbeat(factory, clock())
    if mailbox is not None:
        try:
            out.mailbox = poll_mailbox(factory, mailbox[0], mailbox[1], now=clock())
        except MailboxError as e:  # a mail server down must not stop scraping and sending
            log.warning("mailbox not read: %s", e)
    for sid in claim_due_sources(factory, clock()):
        out.scrapes.append(
            scrape_source(factory, sid, fetcher=fetcher, now=clock(), failing_after=failing_after)
        )
    out.matched = match_new_events(factory, now=clock(), cache=cache)
    if out.matched.events:  # new papers, new candidates: trained before the digests go out
        out.recommended = train_recommendations(factory, cfg.recommend(), now=clock())
    out.dispatched = dispatch_due_digests(factory, cfg, now=clock())
    out.sends = send_due(factory, out.dispatched, mailer=mailer, cfg=cfg, clock=clock)
    if health is not None:  # operator health: failing sources, the scheduler back after an outage
        out.health = check_health(factory, mailer, health, clock())
    return out

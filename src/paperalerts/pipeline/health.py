"""Operator health, assembled: the one place that reads health from the database and acts on it.

Everything that shows or acts on health goes through here, so each sees the same incidents:

- `collect_report`: the full report (`paperalerts status`, /metrics, the admin dashboard);
- `open_incidents`: just the incidents open now (/healthz, cheap);
- `check_health`: announce incidents that opened and those that recovered to the admins, one
  grouped email per check and event (see `paperalerts.pipeline.health_alerts`).

The verdicts are pure (`paperalerts.core.health`), the queries in
`paperalerts.edges.db.health_repo`. `check_health` runs in every scheduler run (it sees failing
sources, and a scheduler back after an outage), from the web's /healthz (which sees a scheduler
that stopped: it cannot report its own absence) and in `run`'s housekeeping. The ``state`` table
keeps what was announced, so any number of checkers may run at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from paperalerts.core.delivery_health import matching_incident, relay_incident
from paperalerts.core.health import (
    Announced,
    HealthReport,
    Incident,
    incidents,
    plan_alerts,
)
from paperalerts.edges.broker import QueueDepths
from paperalerts.edges.db import breaker, health_repo
from paperalerts.edges.mailer import Mailer
from paperalerts.errors import DeliveryError
from paperalerts.pipeline.health_alerts import AlertMailer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HealthConfig:
    """The settings health uses, as values. `timezone` is the admins' zone (times in alerts)."""

    admin_emails: tuple[str, ...]
    mail_from: str
    mail_domain: str
    base_url: str
    postal_address: str = ""
    tick_stale_after: timedelta = timedelta(minutes=3)
    stuck_after: timedelta = timedelta(minutes=1)
    timezone: str = "UTC"
    match_wait: timedelta = timedelta(hours=1)


@dataclass(frozen=True)
class CheckOutcome:
    """What one check did: incidents announced open, announced recovered, mails accepted, and
    the errors of mails that were not (those incidents are retried by the next check)."""

    opened: tuple[str, ...] = ()
    recovered: tuple[str, ...] = ()
    mailed: int = 0
    errors: tuple[str, ...] = ()


def collect_report(
    factory: sessionmaker[Session],
    cfg: HealthConfig,
    now: datetime,
    queues: QueueDepths | None = None,
) -> HealthReport:
    """The health report as of `now` (counts over the 24 hours before it)."""
    return read_report(
        factory, now, stale_after=cfg.tick_stale_after, stuck_after=cfg.stuck_after,
        tz=cfg.timezone, queues=queues, match_wait=cfg.match_wait,
    )  # fmt: skip


def read_report(
    factory: sessionmaker[Session],
    now: datetime,
    *,
    stale_after: timedelta,
    stuck_after: timedelta,
    tz: str = "UTC",
    queues: QueueDepths | None = None,
    stuck_limit: int = 50,
    match_wait: timedelta = timedelta(hours=1),
) -> HealthReport:
    """`collect_report` from plain values (for callers without a HealthConfig)."""
    with factory() as s:
        sources = health_repo.source_states(s)
        beat = health_repo.last_heartbeat(s)
        counts = health_repo.pipeline_counts(s, now - timedelta(hours=24))
        stuck = health_repo.stuck_deliveries(s, now, stuck_after, limit=stuck_limit)
        extra = _delivery_incidents(s, now, match_wait, tz)
        in_flight, expired = health_repo.lease_counts(s, now)
    q = queues or QueueDepths("other")
    return HealthReport(
        now=now,
        sources=tuple(sources),
        last_heartbeat=beat,
        counts=counts,
        stuck=tuple(stuck),
        incidents=(*incidents(sources, beat, now, stale_after=stale_after, tz=tz), *extra),
        queues=dict(q.depths),
        queue_kind=q.kind,
        queue_error=q.error,
        in_flight=in_flight,
        expired_leases=expired,
    )


def open_incidents(
    factory: sessionmaker[Session],
    now: datetime,
    *,
    stale_after: timedelta,
    tz: str = "UTC",
    match_wait: timedelta = timedelta(hours=1),
) -> tuple[datetime | None, list[Incident]]:
    """The scheduler's last run and the incidents open as of `now` (a few small queries)."""
    with factory() as s:
        sources = health_repo.source_states(s)
        beat = health_repo.last_heartbeat(s)
        extra = _delivery_incidents(s, now, match_wait, tz)
    return beat, [*incidents(sources, beat, now, stale_after=stale_after, tz=tz), *extra]


def _delivery_incidents(
    s: Session, now: datetime, match_wait: timedelta, tz: str
) -> list[Incident]:
    """The ``matching`` and ``relay`` incidents open as of `now`."""
    oldest, n = health_repo.unmatched_lag(s)
    found = [
        matching_incident(oldest, n, now, match_wait, tz),
        relay_incident(breaker.read(s), now, tz),
    ]
    return [i for i in found if i is not None]


# --- check_health, in named steps ----------------------------------------------------------


def check_health(
    factory: sessionmaker[Session], mailer: Mailer, cfg: HealthConfig, now: datetime
) -> CheckOutcome:
    """Find the incidents open as of `now`, announce the new ones (one email for all of them)
    and the recoveries (one email for all of them) to `cfg.admin_emails` (none configured:
    recorded, not mailed). A mail that fails leaves its incidents as they were for the next
    check: a delivery failure is reported in the outcome, anything else (a template or
    database error) is raised after that."""
    current, announced = observe(factory, cfg, now)
    plan = plan_alerts(current, announced)
    alerts = AlertMailer(mailer, cfg.admin_emails, cfg.mail_from, cfg.mail_domain,
                         cfg.base_url, cfg.postal_address, cfg.timezone)  # fmt: skip
    opened = announce_opened(factory, alerts, plan.opened, now)
    recovered = announce_recovered(factory, alerts, [announced[k] for k in plan.recovered], now)
    return CheckOutcome(
        opened=opened.keys,
        recovered=recovered.keys,
        mailed=opened.mailed + recovered.mailed,
        errors=opened.errors + recovered.errors,
    )


def observe(
    factory: sessionmaker[Session], cfg: HealthConfig, now: datetime
) -> tuple[list[Incident], dict[str, Announced]]:
    """Step 1: the incidents open now and those announced earlier."""
    _, current = open_incidents(
        factory, now, stale_after=cfg.tick_stale_after, tz=cfg.timezone, match_wait=cfg.match_wait
    )
    with factory() as s:
        announced = health_repo.announced_incidents(s)
    return current, announced


@dataclass(frozen=True)
class _Announced:
    keys: tuple[str, ...] = ()
    mailed: int = 0
    errors: tuple[str, ...] = ()


def announce_opened(
    factory: sessionmaker[Session], alerts: AlertMailer, opened: tuple[Incident, ...], now: datetime
) -> _Announced:
    """Step 2: claim each newly open incident (another checker may have), then mail the ones
    this check claimed in one email. If that mail fails, un-claim them all so the next check
    tries again (an alert is worth a duplicate, never a silence)."""
    mine = [i for i in opened if health_repo.claim_incident(factory, i.key, i.title, now)]
    if not mine:
        return _Announced()
    try:
        mailed = alerts.opened(mine, now)
    except Exception as e:
        for i in mine:
            health_repo.release_incident(factory, i.key)
        if not isinstance(e, DeliveryError):
            raise
        log.warning("health alert for %s not sent: %s", ", ".join(i.key for i in mine), e)
        return _Announced(errors=(f"{', '.join(i.key for i in mine)}: {e}",))
    return _Announced(tuple(i.key for i in mine), mailed)


def announce_recovered(
    factory: sessionmaker[Session], alerts: AlertMailer, gone: list[Announced], now: datetime
) -> _Announced:
    """Step 3: release each recovered incident (another checker may have), then mail the ones
    this check released in one email. If that mail fails, put them back as they were so the
    next check announces the recovery again."""
    mine = [a for a in gone if health_repo.release_incident(factory, a.key)]
    if not mine:
        return _Announced()
    try:
        mailed = alerts.recovered(mine, now)
    except Exception as e:
        for a in mine:
            health_repo.claim_incident(factory, a.key, a.title, a.opened_at or now)
        if not isinstance(e, DeliveryError):
            raise
        log.warning("health recovery for %s not sent: %s", ", ".join(a.key for a in mine), e)
        return _Announced(errors=(f"{', '.join(a.key for a in mine)}: {e}",))
    return _Announced(tuple(a.key for a in mine), mailed)

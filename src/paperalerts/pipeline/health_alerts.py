"""Assembling operator health: read the report from the database, and mail admins about incidents.

`check_health` runs inside every beat tick (it sees failing sources, and a tick that is back after
an outage) and from the web's /healthz (which sees a tick that stopped: the tick cannot report
its own absence). Each incident is mailed once when it opens and once when it recovers; the
``state`` table keeps what was announced, so any number of checkers may run at once.

Mail goes out through the `Mailer` passed in, to the ADMIN_EMAILS addresses. A failed announcement
is un-recorded so the next check tries again (an alert is worth a duplicate, never a silence).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from paperalerts.core.message import build_message
from paperalerts.core.render import Footer, render_email
from paperalerts.edges.broker import QueueDepths
from paperalerts.edges.db import health_repo
from paperalerts.edges.mailer import Mailer
from paperalerts.errors import DeliveryError
from paperalerts.pipeline.health import (
    TICK_KEY,
    HealthReport,
    Incident,
    IncidentKind,
    describe_key,
    incidents,
    plan_alerts,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HealthConfig:
    """The settings health uses, as values."""

    admin_emails: tuple[str, ...]
    mail_from: str
    mail_domain: str
    base_url: str
    postal_address: str = ""
    tick_stale_after: timedelta = timedelta(minutes=3)
    stuck_after: timedelta = timedelta(minutes=1)


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
    with factory() as s:
        sources = health_repo.source_states(s)
        tick = health_repo.last_tick(s)
        counts = health_repo.pipeline_counts(s, now - timedelta(hours=24))
        stuck = health_repo.stuck_deliveries(s, now, cfg.stuck_after)
    q = queues or QueueDepths("other")
    return HealthReport(
        now=now,
        sources=tuple(sources),
        last_tick=tick,
        counts=counts,
        stuck=tuple(stuck),
        incidents=tuple(incidents(sources, tick, now, stale_after=cfg.tick_stale_after)),
        queues=dict(q.depths),
        queue_kind=q.kind,
        queue_error=q.error,
    )


def check_health(
    factory: sessionmaker[Session], mailer: Mailer, cfg: HealthConfig, now: datetime
) -> CheckOutcome:
    """Find the incidents open as of `now`, announce the new ones and the recoveries to
    `cfg.admin_emails` (none configured: recorded, not mailed). A mail that fails leaves its
    incident unannounced for the next check: a delivery failure is reported in the outcome,
    anything else (a template or database error) is raised after that."""
    with factory() as s:
        sources = health_repo.source_states(s)
        tick = health_repo.last_tick(s)
        announced = health_repo.announced_incidents(s)
    current = incidents(sources, tick, now, stale_after=cfg.tick_stale_after)
    plan = plan_alerts(current, announced)
    opened: list[str] = []
    recovered: list[str] = []
    errors: list[str] = []
    mailed = 0
    for incident in plan.opened:
        if not health_repo.claim_incident(factory, incident, now):
            continue  # another checker announced it
        try:
            mailed += _mail(
                mailer,
                cfg,
                "opened",
                incident.title,
                incident.detail,
                incident.since,
                now,
                ident=f"{incident.key}\0open\0{_stamp(incident.since)}",
            )
        except Exception as e:
            # Not announced after all: un-record it so the next check tries again.
            health_repo.release_incident(factory, incident.key)
            if not isinstance(e, DeliveryError):
                raise
            errors.append(f"{incident.key}: {e}")
            log.warning("health alert for %s not sent: %s", incident.key, e)
            continue
        opened.append(incident.key)
    for key in plan.recovered:
        if not health_repo.release_incident(factory, key):
            continue
        was = announced.get(key, {})
        title = f"{describe_key(key)} is back to normal"
        opened_at = str(was.get("opened_at", "unknown"))
        detail = f"Resolved: {was.get('title', describe_key(key))} (announced {opened_at})."
        try:
            mailed += _mail(
                mailer,
                cfg,
                "recovered",
                title,
                detail,
                None,
                now,
                ident=f"{key}\0recovered\0{opened_at}",
            )
        except Exception as e:
            # Put the incident back so the next check announces the recovery again.
            kind: IncidentKind = "tick" if key == TICK_KEY else "source"
            health_repo.claim_incident(
                factory, Incident(key, kind, str(was.get("title", key)), ""), now
            )
            if not isinstance(e, DeliveryError):
                raise
            errors.append(f"{key}: {e}")
            log.warning("health recovery for %s not sent: %s", key, e)
            continue
        recovered.append(key)
    return CheckOutcome(tuple(opened), tuple(recovered), mailed, tuple(errors))


def _mail(
    mailer: Mailer,
    cfg: HealthConfig,
    event: str,
    title: str,
    detail: str,
    since: datetime | None,
    now: datetime,
    *,
    ident: str,
) -> int:
    """Send one alert to every admin; returns how many were accepted. Raises DeliveryError from
    the first that was not. `ident` names the incident event: its Message-ID derives from it,
    so a retried announcement carries the same one."""
    rendered = render_email(
        "ops_alert",
        {
            "event": event,
            "title": title,
            "detail": detail,
            "since": _stamp(since) if since else "",
            "noticed": _stamp(now),
            "admin_url": f"{cfg.base_url.rstrip('/')}/admin",
            "footer": Footer(
                reason="your address is in ADMIN_EMAILS of this paperalerts installation.",
                postal_address=cfg.postal_address,
            ),
        },
    )
    message_key = "ops-" + hashlib.sha256(ident.encode()).hexdigest()[:24]
    for addr in cfg.admin_emails:
        msg = build_message(
            rendered,
            from_addr=cfg.mail_from,
            to_addr=addr,
            to_name="",
            delivery_id=message_key,
            now=now,
            base_url=cfg.base_url,
            unsubscribe_token=None,
            list_id=None,
            mail_domain=cfg.mail_domain,
        )
        mailer.send(msg)
    return len(cfg.admin_emails)


def _stamp(t: datetime | None) -> str:
    return "never" if t is None else t.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")

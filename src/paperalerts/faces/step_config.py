"""Settings -> the values each pipeline step takes.

The steps never read the environment: a face (CLI, web, Celery task, demo) reads `Settings` once
and hands the step these frozen values. This is the one place that translates one into the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from paperalerts.core.health import parse_admin_emails
from paperalerts.core.message import mail_domain_of
from paperalerts.core.schedule import zone
from paperalerts.core.verp import bounce_address
from paperalerts.edges.config import Settings
from paperalerts.edges.mailer import longest_exchange
from paperalerts.pipeline.deliver import DeliveryConfig
from paperalerts.pipeline.health import HealthConfig


def delivery_config(s: Settings) -> DeliveryConfig:
    """What dispatch, sending and the sweep need. Raises ConfigError without a usable secret key
    or with a malformed BOUNCE_ADDRESS."""
    domain = s.mail_domain or mail_domain_of(s.mail_from)
    return DeliveryConfig(
        base_url=s.base_url,
        secret=s.effective_secret_key(),
        mail_from=s.mail_from,
        mail_domain=domain,
        postal_address=s.postal_address,
        max_items=s.digest_max_items,
        send_empty=s.send_empty_digests,
        bounce_threshold=s.bounce_threshold,
        max_attempts=s.delivery_max_attempts,
        lease=timedelta(seconds=s.delivery_lease_seconds),
        exchange=timedelta(seconds=longest_exchange(s)),
        backoff_base=timedelta(seconds=s.delivery_backoff_seconds),
        backoff_max=timedelta(
            seconds=max(s.delivery_backoff_seconds, s.delivery_backoff_max_seconds)
        ),
        retry_window=timedelta(hours=s.delivery_retry_hours),
        match_wait=timedelta(minutes=s.digest_match_wait_minutes),
        breaker_failures=s.smtp_breaker_failures,
        breaker_pause_max=timedelta(seconds=s.smtp_breaker_max_pause_seconds),
        stale_after=timedelta(seconds=s.delivery_stale_seconds),
        recommend_min_positives=s.recommend_min_positives,
        recommend_max_items=s.recommend_max_items,
        bounce_address=bounce_address(s.bounce_address, domain),
    )


def health_config(s: Settings) -> HealthConfig:
    """What the health report and the admins' alerts need. Raises ValueError naming a malformed
    ADMIN_EMAILS entry or ADMIN_TIMEZONE."""
    zone(s.admin_timezone)
    return HealthConfig(
        admin_emails=parse_admin_emails(s.admin_emails),
        mail_from=s.mail_from,
        mail_domain=s.mail_domain or mail_domain_of(s.mail_from),
        base_url=s.base_url,
        postal_address=s.postal_address,
        tick_stale_after=timedelta(seconds=s.tick_stale_seconds),
        stuck_after=timedelta(seconds=s.delivery_stale_seconds),
        timezone=s.admin_timezone,
        match_wait=timedelta(minutes=s.digest_match_wait_minutes),
    )


@dataclass(frozen=True)
class TaskLimits:
    """Celery time limits (seconds) of the scrape and send tasks, and the send batch's budget.

    A limit must never cut legitimate work, so each is derived from the settings that bound the
    work itself: a scrape is one fetch (at most FETCH_DEADLINE) plus parsing and storing; a send
    batch stops claiming and sending once it has run `send_batch_budget` (the lease) and hands
    the rest back (the same path as a worker stop), so it ends well before its soft limit, which
    leaves room for the message in flight (a few SMTP commands, each up to SMTP_TIMEOUT). The
    soft limit raises inside the task (a scrape records the failure); the hard one kills the
    process, a last resort the sweep recovers from."""

    scrape_soft: float
    scrape_hard: float
    send_soft: float
    send_hard: float
    send_batch_budget: float

    def annotations(self) -> dict[str, dict[str, float]]:
        """Celery's ``task_annotations`` setting for these limits."""
        scrape = {"soft_time_limit": self.scrape_soft, "time_limit": self.scrape_hard}
        send = {"soft_time_limit": self.send_soft, "time_limit": self.send_hard}
        return {"paperalerts.scrape_source": scrape, "paperalerts.send_deliveries": send,
                "paperalerts.send_delivery": send}


def task_limits(s: Settings) -> TaskLimits:
    """The time limits for `s` (see `TaskLimits`)."""
    scrape_soft = s.fetch_deadline + 120.0  # parsing and storing a 10 MB page take seconds
    # The message in flight: its whole SMTP exchange at worst (or 4 steps without SMTP_URL).
    in_flight = max(longest_exchange(s), 4 * s.smtp_timeout) + 60.0
    budget = float(s.delivery_lease_seconds)
    return TaskLimits(
        scrape_soft=scrape_soft,
        scrape_hard=scrape_soft + 60.0,
        send_soft=budget + in_flight,
        send_hard=budget + in_flight + 60.0,
        send_batch_budget=budget,
    )

"""Settings -> the values each pipeline step takes.

The steps never read the environment: a face (CLI, web, Celery task, demo) reads `Settings` once
and hands the step these frozen values. This is the one place that translates one into the other.
"""

from __future__ import annotations

from datetime import timedelta

from paperalerts.core.health import parse_admin_emails
from paperalerts.core.message import mail_domain_of
from paperalerts.core.schedule import zone
from paperalerts.edges.config import Settings
from paperalerts.pipeline.deliver import DeliveryConfig
from paperalerts.pipeline.health import HealthConfig


def delivery_config(s: Settings) -> DeliveryConfig:
    """What dispatch, sending and the sweep need. Raises ConfigError without a usable secret key."""
    return DeliveryConfig(
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

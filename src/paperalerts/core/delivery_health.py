"""Delivery incidents for operator health, pure (`now` passed in): matching too far behind for
digests to wait for it, and the relay's breaker open. Joined to the source and scheduler
incidents by `paperalerts.pipeline.health`.

- ``matching``: paper events have waited unmatched longer than `match_wait`, the bound a due
  digest waits for them (`paperalerts.pipeline.dispatch_digests`): digests now go out without
  those papers (they join the next digest). The matcher is down, failing or far behind.
- ``relay``: the SMTP relay refused every message long enough to open the breaker
  (`paperalerts.core.breaker`): all sending is paused and probed; nothing is lost meanwhile.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from paperalerts.core.breaker import Breaker
from paperalerts.core.health import Incident, human_duration, human_time

MATCHING_KEY: Final = "matching"
RELAY_KEY: Final = "relay"


def matching_incident(
    oldest_unmatched: datetime | None,
    unmatched: int,
    now: datetime,
    match_wait: timedelta,
    tz: str = "UTC",
) -> Incident | None:
    """The ``matching`` incident when the oldest unmatched event is older than `match_wait`."""
    if oldest_unmatched is None or now - oldest_unmatched <= match_wait:
        return None
    return Incident(
        key=MATCHING_KEY,
        kind="matching",
        title=f"Matching is {human_duration(now - oldest_unmatched)} behind",
        detail=(
            f"{unmatched} paper events are unmatched, the oldest scraped "
            f"{human_time(oldest_unmatched, now, tz)}. Due digests wait up to "
            f"{human_duration(match_wait)} past their send time for matching, then go out "
            "without those papers (they join the next digest): check the workers that take "
            "the `match` queue and their log."
        ),
        since=oldest_unmatched,
    )


def relay_incident(b: Breaker, now: datetime, tz: str = "UTC") -> Incident | None:
    """The ``relay`` incident while the breaker is open."""
    if b.open_until is None:
        return None
    since = b.opened_at or now
    return Incident(
        key=RELAY_KEY,
        kind="relay",
        title=f"The SMTP relay has refused every message for {human_duration(now - since)}",
        detail=(
            f"Sending is paused after {b.failures} failures in a row (last: "
            f"{b.last_error or 'none recorded'}); the next probe is "
            f"{human_time(b.open_until, now, tz)}. Deliveries wait, queued, and go out when "
            "the relay accepts again: check SMTP_URL and the relay."
        ),
        since=since,
    )

"""The pipeline steps: plain functions over a session factory and the edges passed in.

No Celery here (tasks.py wraps these), no environment (settings values are arguments).
"""

from paperalerts.pipeline.deliver import (
    DeliveryConfig,
    SendOutcome,
    dispatch_due_digests,
    send_delivery,
    sweep,
)
from paperalerts.pipeline.match import IndexCache, MatchOutcome, match_new_events
from paperalerts.pipeline.scrape import ScrapeOutcome, claim_due_sources, scrape_source
from paperalerts.pipeline.send_batch import send_deliveries
from paperalerts.pipeline.tick import TickOutcome, send_due, tick

__all__ = [
    "DeliveryConfig",
    "IndexCache",
    "MatchOutcome",
    "ScrapeOutcome",
    "SendOutcome",
    "TickOutcome",
    "claim_due_sources",
    "dispatch_due_digests",
    "match_new_events",
    "scrape_source",
    "send_deliveries",
    "send_delivery",
    "send_due",
    "sweep",
    "tick",
]

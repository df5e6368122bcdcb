"""The pipeline steps: plain functions over a session factory and the edges passed in.

No Celery here (tasks.py wraps these), no environment (settings values are arguments).
"""

from paperalerts.pipeline.match import IndexCache, MatchOutcome, match_new_events
from paperalerts.pipeline.scrape import ScrapeOutcome, claim_due_sources, scrape_source

__all__ = [
    "IndexCache",
    "MatchOutcome",
    "ScrapeOutcome",
    "claim_due_sources",
    "match_new_events",
    "scrape_source",
]

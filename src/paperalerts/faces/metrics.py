"""Prometheus metrics read from the database (and the broker) at scrape time.

The database is the source of truth (the broker only carries wake-ups), so the gauges are
computed from it on each scrape of /metrics rather than counted in one process: any web replica
answers the same, and a restart resets nothing. Metrics (all gauges):

    paperalerts_deliveries{status}             deliveries by status (queued/sending/sent/failed)
    paperalerts_deliveries_stuck               deliveries past their lease or long past due
    paperalerts_sources{health}                enabled sources by health (ok/degraded/failing)
    paperalerts_source_consecutive_failures{source}
    paperalerts_events_unmatched               paper events the matcher has not reached
    paperalerts_last_tick_timestamp_seconds    when the beat tick last ran (absent: never)
    paperalerts_last_tick_age_seconds          how long ago (absent: never)
    paperalerts_queue_depth{queue}             messages waiting in the broker (absent: n/a)
    paperalerts_last_24h{stage}                fetched / new / matched / queued / sent / failed
    paperalerts_incidents_open                 incidents open now (failing sources, stale tick)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.edges.broker import queue_depths
from paperalerts.edges.db import health_repo
from paperalerts.edges.db.models import DELIVERY_STATUSES
from paperalerts.pipeline.health import PipelineCounts, SourceState, incidents

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
HEALTHS: Final = ("ok", "degraded", "failing")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class DatabaseCollector:
    """A prometheus-client collector over the database at `factory` and the broker at
    `broker_url` (None: no queue gauges)."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        broker_url: str | None,
        stuck_after: timedelta = timedelta(minutes=1),
        tick_stale_after: timedelta = timedelta(minutes=3),
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.factory = factory
        self.broker_url = broker_url
        self.stuck_after = stuck_after
        self.tick_stale_after = tick_stale_after
        self.clock = clock

    def collect(self) -> Iterable[Metric]:
        """One consistent read of the database, then each family of gauges from it."""
        now = self.clock()
        state = self._read(now)
        yield from _delivery_gauges(state)
        yield from _source_gauges(state)
        yield GaugeMetricFamily(
            "paperalerts_events_unmatched", "Paper events not yet matched.", value=state.unmatched
        )
        yield from _tick_gauges(state.tick, now)
        if self.broker_url:
            yield _queue_gauge(self.broker_url)
        g = GaugeMetricFamily(
            "paperalerts_last_24h", "The last 24 hours along the pipeline.", labels=["stage"]
        )
        for stage, n in state.counts.pairs():
            g.add_metric([stage], n)
        yield g
        open_now = incidents(state.sources, state.tick, now, stale_after=self.tick_stale_after)
        yield GaugeMetricFamily(
            "paperalerts_incidents_open",
            "Incidents open now (sources failing two intervals in a row, a stale tick).",
            value=len(open_now),
        )

    def _read(self, now: datetime) -> _State:
        with self.factory() as s:
            return _State(
                by_status=health_repo.deliveries_by_status(s),
                stuck=len(health_repo.stuck_deliveries(s, now, self.stuck_after, limit=100_000)),
                sources=health_repo.source_states(s),
                tick=health_repo.last_tick(s),
                unmatched=health_repo.unmatched_events(s),
                counts=health_repo.pipeline_counts(s, now - timedelta(hours=24)),
            )


@dataclass(frozen=True)
class _State:
    """What one scrape of /metrics read from the database."""

    by_status: Mapping[str, int]
    stuck: int
    sources: Sequence[SourceState]
    tick: datetime | None
    unmatched: int
    counts: PipelineCounts


def _delivery_gauges(state: _State) -> Iterator[Metric]:
    g = GaugeMetricFamily("paperalerts_deliveries", "Deliveries by status.", labels=["status"])
    for status in sorted(set(DELIVERY_STATUSES) | set(state.by_status)):
        g.add_metric([status], state.by_status.get(status, 0))
    yield g
    yield GaugeMetricFamily(
        "paperalerts_deliveries_stuck",
        "Deliveries past their lease or past due by more than the stale time.",
        value=state.stuck,
    )


def _source_gauges(state: _State) -> Iterator[Metric]:
    """Enabled sources by health (every health always present), and each one's failure run."""
    enabled = [src for src in state.sources if src.enabled]
    g = GaugeMetricFamily("paperalerts_sources", "Enabled sources by health.", labels=["health"])
    for health in sorted(set(HEALTHS) | {src.health for src in enabled}):
        g.add_metric([health], sum(1 for src in enabled if src.health == health))
    yield g
    g = GaugeMetricFamily(
        "paperalerts_source_consecutive_failures",
        "Failed or rejected scrapes in a row, per enabled source.",
        labels=["source"],
    )
    for src in enabled:
        g.add_metric([src.name], src.consecutive_failures)
    yield g


def _tick_gauges(tick: datetime | None, now: datetime) -> Iterator[Metric]:
    """When the beat tick last ran and how long ago; nothing if it never ran."""
    if tick is None:
        return
    yield GaugeMetricFamily(
        "paperalerts_last_tick_timestamp_seconds",
        "Unix time of the last beat tick.",
        value=tick.timestamp(),
    )
    yield GaugeMetricFamily(
        "paperalerts_last_tick_age_seconds",
        "Seconds since the last beat tick.",
        value=max((now - tick).total_seconds(), 0.0),
    )


def _queue_gauge(broker_url: str) -> Metric:
    """Messages waiting per queue; a queue the broker cannot count is left out."""
    g = GaugeMetricFamily(
        "paperalerts_queue_depth", "Messages waiting in the broker.", labels=["queue"]
    )
    for queue, depth in queue_depths(broker_url).depths.items():
        if depth is not None:
            g.add_metric([queue], depth)
    return g


def registry_for(collector: DatabaseCollector) -> CollectorRegistry:
    """A registry holding only `collector` (no process-global state)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition of `registry`."""
    return generate_latest(registry)

"""Prometheus metrics read from the database (and the broker) at scrape time.

The database is the source of truth (DESIGN §2), so the gauges are computed from it on each
scrape of /metrics rather than counted in one process: any web replica answers the same, and a
restart resets nothing. Metrics (all gauges):

    paperalerts_deliveries{status}             deliveries by status (queued/sending/sent/failed)
    paperalerts_deliveries_stuck               deliveries past their lease or long past due
    paperalerts_sources{health}                enabled sources by verdict (ok/degraded/failing/
                                               unchecked; one that never worked is failing)
    paperalerts_source_consecutive_failures{source}
    paperalerts_events_unmatched               paper events the matcher has not reached
    paperalerts_last_tick_timestamp_seconds    when the scheduler last ran (absent: never)
    paperalerts_last_tick_age_seconds          how long ago (absent: never)
    paperalerts_queue_depth{queue}             messages waiting in the broker (absent: n/a)
    paperalerts_last_24h{stage}                fetched / new / matched / queued / sent / failed
    paperalerts_incidents_open                 incidents open now (failing sources, scheduler)

The report itself comes from `paperalerts.pipeline.health.read_report`, as for `status` and
/healthz, so all of them count the same incidents.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Final

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.core.health import HealthReport
from paperalerts.edges.broker import queue_depths
from paperalerts.edges.db import health_repo
from paperalerts.edges.db.models import DELIVERY_STATUSES
from paperalerts.pipeline.health import read_report

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"


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
        now = self.clock()
        report = read_report(
            self.factory, now, stale_after=self.tick_stale_after, stuck_after=self.stuck_after,
            stuck_limit=100_000,
        )  # fmt: skip
        with self.factory() as s:
            by_status = health_repo.deliveries_by_status(s)
            unmatched = health_repo.unmatched_events(s)
        yield from _delivery_gauges(by_status, len(report.stuck))
        yield from _source_gauges(report)
        yield GaugeMetricFamily(
            "paperalerts_events_unmatched", "Paper events not yet matched.", value=unmatched
        )
        yield from _scheduler_gauges(report.last_heartbeat, now)
        if self.broker_url:
            yield _queue_gauge(self.broker_url)
        g = GaugeMetricFamily(
            "paperalerts_last_24h", "The last 24 hours along the pipeline.", labels=["stage"]
        )
        for stage, n in report.counts.pairs():
            g.add_metric([stage], n)
        yield g
        yield GaugeMetricFamily(
            "paperalerts_incidents_open",
            "Incidents open now (failing sources, a scheduler that stopped).",
            value=len(report.incidents),
        )


def _delivery_gauges(by_status: Mapping[str, int], stuck: int) -> Iterator[Metric]:
    g = GaugeMetricFamily("paperalerts_deliveries", "Deliveries by status.", labels=["status"])
    for status in sorted(set(DELIVERY_STATUSES) | set(by_status)):
        g.add_metric([status], by_status.get(status, 0))
    yield g
    yield GaugeMetricFamily(
        "paperalerts_deliveries_stuck",
        "Deliveries past their lease or past due by more than the stale time.",
        value=stuck,
    )


def _source_gauges(report: HealthReport) -> Iterator[Metric]:
    g = GaugeMetricFamily(
        "paperalerts_sources", "Enabled sources by health verdict.", labels=["health"]
    )
    for verdict, n in report.verdict_counts().items():
        g.add_metric([verdict], n)
    yield g
    g = GaugeMetricFamily(
        "paperalerts_source_consecutive_failures",
        "Failed or rejected scrapes in a row, per enabled source.",
        labels=["source"],
    )
    for src in report.sources:
        if src.enabled:
            g.add_metric([src.name], src.consecutive_failures)
    yield g


def _scheduler_gauges(last: datetime | None, now: datetime) -> Iterator[Metric]:
    """When the scheduler last ran; absent when it never has (no made-up zero)."""
    if last is None:
        return
    yield GaugeMetricFamily(
        "paperalerts_last_tick_timestamp_seconds",
        "Unix time of the scheduler's last run.",
        value=last.timestamp(),
    )
    yield GaugeMetricFamily(
        "paperalerts_last_tick_age_seconds",
        "Seconds since the scheduler's last run.",
        value=max((now - last).total_seconds(), 0.0),
    )


def _queue_gauge(broker_url: str) -> Metric:
    depths = queue_depths(broker_url)
    g = GaugeMetricFamily(
        "paperalerts_queue_depth", "Messages waiting in the broker.", labels=["queue"]
    )
    for queue, depth in depths.depths.items():
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

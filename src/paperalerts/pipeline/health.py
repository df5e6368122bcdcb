"""Operator health, pure: values in (sources' state, the last tick, counts, `now`), verdicts out.

Two kinds of incident page an operator before subscribers notice:

- ``source:<name>``: an enabled source whose last `SOURCE_FAILED_INTERVALS` (2) scrapes in a row
  failed or were rejected, i.e. it has been broken for two of its intervals;
- ``tick``: the beat tick has not run for `stale_after` (3 minutes by default): beat is down, or
  no worker takes the tick off the queue.

`plan_alerts` compares the incidents open now with those already announced and says which to
announce and which have recovered, so each incident is mailed once when it opens and once when it
closes. The bookkeeping itself lives in `paperalerts.edges.db.health_repo`, the sending in
`paperalerts.pipeline.health_alerts`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

SOURCE_FAILED_INTERVALS: Final = 2
DEFAULT_TICK_STALE: Final = timedelta(minutes=3)
TICK_KEY: Final = "tick"
SOURCE_KEY_PREFIX: Final = "source:"

IncidentKind = Literal["source", "tick"]


@dataclass(frozen=True)
class SourceState:
    """What health needs to know of one source."""

    name: str
    kind: str
    url: str
    enabled: bool
    health: str  # ok / degraded / failing
    consecutive_failures: int
    every_seconds: int
    last_run_at: datetime | None = None
    last_success_at: datetime | None = None
    failing_since: datetime | None = None
    last_error: str | None = None
    last_entry_count: int | None = None


@dataclass(frozen=True)
class StuckDelivery:
    """A delivery that should have gone out and has not: a send whose lease ran out (its worker
    died), or a queued one past due by more than the stale time (its wake-up was lost)."""

    id: int
    subscriber: str
    kind: str
    status: str
    attempts: int
    since: datetime
    last_error: str | None = None


@dataclass(frozen=True)
class PipelineCounts:
    """One window (the last 24 h) along the pipeline: scrapes fetched, new papers, match rows,
    deliveries made and still queued, sent, failed."""

    fetched: int = 0
    new: int = 0
    matched: int = 0
    queued: int = 0
    sent: int = 0
    failed: int = 0

    def pairs(self) -> list[tuple[str, int]]:
        """``[("fetched", n), ("new", n), ...]`` in pipeline order."""
        return list(asdict(self).items())


@dataclass(frozen=True)
class Incident:
    """Something an operator must hear about. `key` names it for once-per-incident bookkeeping."""

    key: str
    kind: IncidentKind
    title: str
    detail: str
    since: datetime | None = None


@dataclass(frozen=True)
class AlertPlan:
    """What to mail now: incidents that just opened, and the keys of announced ones now gone."""

    opened: tuple[Incident, ...] = ()
    recovered: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.opened and not self.recovered


@dataclass(frozen=True)
class HealthReport:
    """Everything `paperalerts status`, /healthz and /metrics show, as of `now`."""

    now: datetime
    sources: tuple[SourceState, ...]
    last_tick: datetime | None
    counts: PipelineCounts
    stuck: tuple[StuckDelivery, ...]
    incidents: tuple[Incident, ...]
    queues: dict[str, int | None] = field(default_factory=dict)
    queue_kind: str = "other"
    queue_error: str | None = None

    @property
    def tick_age(self) -> timedelta | None:
        return tick_age(self.last_tick, self.now)

    @property
    def ok(self) -> bool:
        """No incident open and nothing stuck."""
        return not self.incidents and not self.stuck


def tick_age(last_tick: datetime | None, now: datetime) -> timedelta | None:
    """How long ago the last tick ran (None: never)."""
    return None if last_tick is None else max(now - last_tick, timedelta(0))


def tick_incident(
    last_tick: datetime | None, now: datetime, stale_after: timedelta = DEFAULT_TICK_STALE
) -> Incident | None:
    """The ``tick`` incident when the last tick is older than `stale_after`. A tick that never
    ran is no incident: a fresh installation cannot be told from a dead beat, and `status`
    shows "never" for it."""
    age = tick_age(last_tick, now)
    if age is None or age <= stale_after:
        return None
    minutes = int(age.total_seconds() // 60)
    return Incident(
        key=TICK_KEY,
        kind="tick",
        title=f"The scheduler tick has not run for {minutes} minutes",
        detail=(
            f"The last tick ran at {_stamp(last_tick)}. Nothing is scraped, matched or sent "
            "until it runs again: check that exactly one `paperalerts beat` is running and "
            "that workers take the `match` queue."
        ),
        since=last_tick,
    )


def source_incidents(
    sources: Iterable[SourceState], failed_intervals: int = SOURCE_FAILED_INTERVALS
) -> list[Incident]:
    """A ``source:<name>`` incident for each enabled source whose last `failed_intervals`
    scrapes in a row failed or were rejected."""
    out = []
    for src in sources:
        if not src.enabled or src.consecutive_failures < failed_intervals:
            continue
        out.append(
            Incident(
                key=SOURCE_KEY_PREFIX + src.name,
                kind="source",
                title=f"Source {src.name} has failed {src.consecutive_failures} scrapes in a row",
                detail=(
                    f"{src.name} ({src.kind}, {src.url}) is {src.health}; last error: "
                    f"{src.last_error or 'none recorded'}. Last healthy scrape: "
                    f"{_stamp(src.last_success_at)}. Its papers are not being seen."
                ),
                since=src.failing_since,
            )
        )
    return out


def incidents(
    sources: Iterable[SourceState],
    last_tick: datetime | None,
    now: datetime,
    *,
    stale_after: timedelta = DEFAULT_TICK_STALE,
    failed_intervals: int = SOURCE_FAILED_INTERVALS,
) -> list[Incident]:
    """Every incident open as of `now`: the tick's first, then sources' by name."""
    found = sorted(source_incidents(sources, failed_intervals), key=lambda i: i.key)
    tick = tick_incident(last_tick, now, stale_after)
    return ([tick] if tick else []) + found


def plan_alerts(current: Sequence[Incident], announced: Collection[str]) -> AlertPlan:
    """Incidents in `current` not yet `announced` open; announced keys no longer current have
    recovered. Each incident is thus mailed once when it opens and once when it closes."""
    keys = {i.key for i in current}
    return AlertPlan(
        opened=tuple(i for i in current if i.key not in announced),
        recovered=tuple(sorted(k for k in announced if k not in keys)),
    )


def describe_key(key: str) -> str:
    """Human words for an incident key (for recovery mails, where only the key is left)."""
    if key == TICK_KEY:
        return "the scheduler tick"
    if key.startswith(SOURCE_KEY_PREFIX):
        return f"source {key.removeprefix(SOURCE_KEY_PREFIX)}"
    return key


def parse_admin_emails(raw: str) -> tuple[str, ...]:
    """The ADMIN_EMAILS setting (comma-separated) as addresses; blanks dropped, order kept,
    duplicates removed. Raises ValueError naming an entry that is not ``user@domain``."""
    out: list[str] = []
    for i, part in enumerate(raw.split(","), 1):
        addr = part.strip()
        if not addr:
            continue
        local, _, domain = addr.rpartition("@")
        if not local or "." not in domain.strip(".") or any(c.isspace() for c in addr):
            raise ValueError(f"ADMIN_EMAILS entry {i} is not an email address: {addr!r}")
        if addr.lower() not in (a.lower() for a in out):
            out.append(addr)
    return tuple(out)


def report_json(report: HealthReport) -> dict[str, Any]:
    """The report as JSON-ready values (times ISO 8601, ages in seconds)."""
    age = report.tick_age
    return {
        "now": report.now.isoformat(),
        "ok": report.ok,
        "last_tick": _iso(report.last_tick),
        "last_tick_age_seconds": None if age is None else round(age.total_seconds(), 1),
        "sources": [
            {**asdict(s), **{k: _iso(getattr(s, k)) for k in _SOURCE_TIMES}} for s in report.sources
        ],
        "queues": {
            "broker": report.queue_kind,
            "depths": report.queues,
            "error": report.queue_error,
        },
        "last_24h": dict(report.counts.pairs()),
        "stuck_deliveries": [{**asdict(d), "since": _iso(d.since)} for d in report.stuck],
        "incidents": [{**asdict(i), "since": _iso(i.since)} for i in report.incidents],
    }


_SOURCE_TIMES: Final = ("last_run_at", "last_success_at", "failing_since")


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def _stamp(t: datetime | None) -> str:
    return "never" if t is None else t.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")

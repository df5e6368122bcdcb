"""Operator health, pure: values in (sources' state, the scheduler's heartbeat, counts, `now`),
verdicts out. Read and acted on by `paperalerts.pipeline.health`.

Two kinds of incident page an operator before subscribers notice:

- ``source:<name>``: an enabled source that is broken: its last `SOURCE_FAILED_INTERVALS` (2)
  scrapes in a row failed or were rejected, or it has never once succeeded and its first
  scrape(s) failed (a new source that never worked is failing at once: waiting a second
  interval would hide a broken default for hours);
- ``scheduler``: the scheduler's heartbeat (written by every beat run, see
  `paperalerts.pipeline.cycle`) is older than `stale_after` (3 minutes by default): beat is down,
  or no worker takes its message off the queue.

`plan_alerts` compares the incidents open now with those already announced and says which to
announce and which have recovered, so each outage is mailed once when it opens and once when it
closes.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from paperalerts.core.schedule import zone

SOURCE_FAILED_INTERVALS: Final = 2
DEFAULT_HEARTBEAT_STALE: Final = timedelta(minutes=3)
SCHEDULER_KEY: Final = "scheduler"
SOURCE_KEY_PREFIX: Final = "source:"

IncidentKind = Literal["source", "scheduler", "matching", "relay"]
# What a source looks like to an operator: the stored health, except that a source whose scrapes
# have failed and which never once succeeded is "failing", and one never scraped is "unchecked".
Verdict = Literal["ok", "degraded", "failing", "unchecked"]
VERDICTS: Final[tuple[Verdict, ...]] = ("ok", "degraded", "failing", "unchecked")


@dataclass(frozen=True)
class SourceState:
    """What health needs to know of one source."""

    name: str
    kind: str
    url: str
    enabled: bool
    health: str  # as stored: ok / degraded / failing
    consecutive_failures: int
    every_seconds: int
    last_run_at: datetime | None = None
    last_success_at: datetime | None = None
    failing_since: datetime | None = None
    last_error: str | None = None
    last_entry_count: int | None = None

    @property
    def never_succeeded(self) -> bool:
        """Scraped at least once, healthy never."""
        return self.last_success_at is None and self.consecutive_failures > 0

    @property
    def verdict(self) -> Verdict:
        if self.never_succeeded:
            return "failing"
        if self.last_run_at is None and self.last_success_at is None:
            return "unchecked"
        for v in VERDICTS:
            if v == self.health:
                return v
        return "failing"  # an unknown stored value is not "ok"


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
    """Something an operator must hear about. `key` names it for once-per-incident bookkeeping;
    `name` is its short human name ("source hf-daily", "the scheduler")."""

    key: str
    kind: IncidentKind
    title: str
    detail: str
    since: datetime | None = None
    cause: str = ""  # what the error means in words (sources); incidents group by it

    @property
    def name(self) -> str:
        return describe_key(self.key)


@dataclass(frozen=True)
class Announced:
    """An incident announced open and not yet recovered: its key, the title it was announced
    with and when (None: unreadable record)."""

    key: str
    title: str
    opened_at: datetime | None


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
    """Everything `paperalerts status`, /healthz, /metrics and the admin dashboard show, as of
    `now`. `last_heartbeat` is when the scheduler last ran (None: never)."""

    now: datetime
    sources: tuple[SourceState, ...]
    last_heartbeat: datetime | None
    counts: PipelineCounts
    stuck: tuple[StuckDelivery, ...]
    incidents: tuple[Incident, ...]
    queues: dict[str, int | None] = field(default_factory=dict)
    queue_kind: str = "other"
    queue_error: str | None = None
    # Deliveries being sent: leases still running, and leases run out (also among `stuck`).
    in_flight: int = 0
    expired_leases: int = 0

    @property
    def heartbeat_age(self) -> timedelta | None:
        return heartbeat_age(self.last_heartbeat, self.now)

    @property
    def ok(self) -> bool:
        """No incident open and nothing stuck."""
        return not self.incidents and not self.stuck

    def verdict_counts(self) -> dict[Verdict, int]:
        """Enabled sources counted by verdict, every verdict present (0 included)."""
        out = dict.fromkeys(VERDICTS, 0)
        for s in self.sources:
            if s.enabled:
                out[s.verdict] += 1
        return out


def heartbeat_age(last: datetime | None, now: datetime) -> timedelta | None:
    """How long ago the scheduler last ran (None: never)."""
    return None if last is None else max(now - last, timedelta(0))


def scheduler_incident(
    last_heartbeat: datetime | None,
    now: datetime,
    stale_after: timedelta = DEFAULT_HEARTBEAT_STALE,
    tz: str = "UTC",
) -> Incident | None:
    """The ``scheduler`` incident when the heartbeat is older than `stale_after`. A scheduler
    that never ran is no incident: a fresh installation cannot be told from a dead beat, and
    `status` shows "never" for it."""
    age = heartbeat_age(last_heartbeat, now)
    if age is None or age <= stale_after:
        return None
    minutes = int(age.total_seconds() // 60)
    return Incident(
        key=SCHEDULER_KEY,
        kind="scheduler",
        title=f"The scheduler has not run for {minutes} minutes",
        detail=(
            f"It last ran {human_time(last_heartbeat, now, tz)}. Nothing is scraped, matched or "
            "sent until it runs again: check that exactly one `paperalerts beat` is running and "
            "that workers take the `match` queue."
        ),
        since=last_heartbeat,
    )


def source_incidents(
    sources: Iterable[SourceState],
    failed_intervals: int = SOURCE_FAILED_INTERVALS,
    now: datetime | None = None,
    tz: str = "UTC",
) -> list[Incident]:
    """A ``source:<name>`` incident for each enabled source whose last `failed_intervals`
    scrapes in a row failed or were rejected, or that never succeeded and has failed."""
    out = []
    for src in sources:
        if not src.enabled:
            continue
        if src.never_succeeded:
            n = src.consecutive_failures
            title = f"Source {src.name} has never worked ({n} failed scrape{'s' * (n != 1)})"
        elif src.consecutive_failures >= failed_intervals:
            title = f"Source {src.name} has failed {src.consecutive_failures} scrapes in a row"
        else:
            continue
        healthy = (
            human_time(src.last_success_at, now or src.last_success_at, tz)
            if src.last_success_at
            else "never"
        )
        out.append(
            Incident(
                key=SOURCE_KEY_PREFIX + src.name,
                kind="source",
                title=title,
                detail=(
                    f"{src.name} ({src.kind}, {src.url}); last error: "
                    f"{src.last_error or 'none recorded'}. Last healthy scrape: {healthy}. "
                    "Its papers are not being seen."
                ),
                since=src.failing_since,
                cause=error_meaning(src.last_error),
            )
        )
    return out


def incidents(
    sources: Iterable[SourceState],
    last_heartbeat: datetime | None,
    now: datetime,
    *,
    stale_after: timedelta = DEFAULT_HEARTBEAT_STALE,
    failed_intervals: int = SOURCE_FAILED_INTERVALS,
    tz: str = "UTC",
) -> list[Incident]:
    """Every incident open as of `now`: the scheduler's first, then sources' by name. Times in
    the details are shown in zone `tz`."""
    found = sorted(source_incidents(sources, failed_intervals, now, tz), key=lambda i: i.key)
    stale = scheduler_incident(last_heartbeat, now, stale_after, tz)
    return ([stale] if stale else []) + found


# (pattern over the lower-cased error, what it means): the first that matches wins.
_MEANINGS: Final[tuple[tuple[re.Pattern[str], str], ...]] = tuple(
    (re.compile(p), m) for p, m in (
        (r"errno -[235]\b|name or service not known|temporary failure in name resolution|"
         r"nodename nor servname|getaddrinfo|no address associated",
         "no network or DNS: the host name could not be looked up"),
        (r"network is unreachable|errno 101\b|no route to host",
         "no network: the host cannot be reached"),
        (r"connection refused|errno 111\b", "connection refused: nothing answers at that address"),
        (r"non-public address", "refused: the URL points at a private address"),
        (r"deadline|timed out|timeout", "timed out: no complete answer in time"),
        (r"certificate|ssl|tls", "TLS error: the server's certificate was not accepted"),
        (r"http (?:404|410)\b", "the page is gone (HTTP 404/410): has the URL changed?"),
        (r"http (?:401|403)\b", "access refused by the server (HTTP 401/403)"),
        (r"http 429\b", "rate-limited by the server (HTTP 429)"),
        (r"http 5\d\d\b", "the server failed (HTTP 5xx): usually passes"),
        (r"larger than", "the page is larger than the size limit"),
        (r"not an? .*(?:page|feed)|cannot parse|parse", "the page no longer parses as its kind"),
        (r"shr[ua]nk|fewer entries|zero entries|no entries",
         "the page lists far fewer papers than usual: the scrape was rejected"),
    )
)


def error_meaning(error: str | None) -> str:
    """What a source's last error means, in words an operator acts on ("no network or DNS: the
    host name could not be looked up" for ``ConnectError … [Errno -2]``); an error it does not
    know is itself, on its first line."""
    if not error:
        return "no error recorded"
    low = error.lower()
    for pattern, meaning in _MEANINGS:
        if pattern.search(low):
            return meaning
    return error.strip().splitlines()[0][:200]


@dataclass(frozen=True)
class IncidentGroup:
    """Open incidents shown as one: every failing source with the same cause, or one other
    incident alone."""

    title: str
    incidents: tuple[Incident, ...]

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(i.key.removeprefix(SOURCE_KEY_PREFIX) for i in self.incidents
                     if i.key.startswith(SOURCE_KEY_PREFIX))


def group_incidents(found: Sequence[Incident]) -> list[IncidentGroup]:
    """`found` with sources failing for the same cause gathered into one group (in the order
    of their first member): six sources cut off by a dead network are one line, not six."""
    groups: dict[str, list[Incident]] = {}
    for i in found:
        key = f"cause:{i.cause}" if i.kind == "source" else f"key:{i.key}"
        groups.setdefault(key, []).append(i)
    out = []
    for members in groups.values():
        first = members[0]
        if len(members) == 1:
            out.append(IncidentGroup(first.title, (first,)))
        else:
            out.append(IncidentGroup(f"{len(members)} sources are failing: {first.cause}",
                                     tuple(members)))
    return out


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
    if key in (SCHEDULER_KEY, "tick"):  # "tick": the key before the scheduler had its own name
        return "the scheduler"
    if key.startswith(SOURCE_KEY_PREFIX):
        return f"source {key.removeprefix(SOURCE_KEY_PREFIX)}"
    return {"matching": "matching", "relay": "the SMTP relay"}.get(key, key)


def group_title(keys: Sequence[str]) -> str:
    """One line naming a group of incidents: "source hf-daily", "3 sources (a, b, c)",
    "the scheduler and 2 sources (a, b)"."""
    sources = [k.removeprefix(SOURCE_KEY_PREFIX) for k in keys if k.startswith(SOURCE_KEY_PREFIX)]
    parts = [describe_key(k) for k in keys if not k.startswith(SOURCE_KEY_PREFIX)]
    if len(sources) == 1:
        parts.append(f"source {sources[0]}")
    elif sources:
        shown = ", ".join(sources[:4]) + (", …" if len(sources) > 4 else "")
        parts.append(f"{len(sources)} sources ({shown})")
    return " and ".join(parts)


def human_time(t: datetime | None, now: datetime | None = None, tz: str = "UTC") -> str:
    """`t` for people, in zone `tz`: ``today 09:30 CET``, ``yesterday 23:10 CET``, else
    ``Mon 2 Mar 2026 09:30 CET``; "never" for None. Raises ValueError for an unknown zone."""
    if t is None:
        return "never"
    zi = zone(tz)
    local = t.astimezone(zi)
    clock = f"{local:%H:%M %Z}"
    if now is not None:
        days = (now.astimezone(zi).date() - local.date()).days
        if days == 0:
            return f"today {clock}"
        if days == 1:
            return f"yesterday {clock}"
    return f"{local:%a} {local.day} {local:%b %Y} {clock}"


def human_duration(delta: timedelta) -> str:
    """``45 min``, ``2 h 5 min``, ``3 days 4 h`` (rounded down to the minute)."""
    minutes = max(int(delta.total_seconds() // 60), 0)
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} day{'s' * (days != 1)}" + (f" {hours} h" if hours else "")
    if hours:
        return f"{hours} h" + (f" {mins} min" if mins else "")
    return f"{mins} min"


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
    """The report as JSON-ready values (times ISO 8601, ages in seconds). The keys named
    ``last_tick`` keep their published name: they are the scheduler's heartbeat."""
    age = report.heartbeat_age
    return {
        "now": report.now.isoformat(),
        "ok": report.ok,
        "last_tick": _iso(report.last_heartbeat),
        "last_tick_age_seconds": None if age is None else round(age.total_seconds(), 1),
        "sources": [
            {
                **asdict(s),
                **{k: _iso(getattr(s, k)) for k in _SOURCE_TIMES},
                "verdict": s.verdict,
            }
            for s in report.sources
        ],
        "queues": {
            "broker": report.queue_kind,
            "depths": report.queues,
            "error": report.queue_error,
        },
        "last_24h": dict(report.counts.pairs()),
        "stuck_deliveries": [{**asdict(d), "since": _iso(d.since)} for d in report.stuck],
        "deliveries_sending": {
            "in_flight": report.in_flight, "lease_expired": report.expired_leases
        },
        "incidents": [{**asdict(i), "since": _iso(i.since)} for i in report.incidents],
    }


_SOURCE_TIMES: Final = ("last_run_at", "last_success_at", "failing_since")


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()

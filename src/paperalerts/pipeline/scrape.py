"""The scrape step: fetch -> parse -> assess -> diff -> store, for one source.

All database writes of one scrape happen in one transaction, so a crash mid-scrape leaves the
database as it was. A rejected scrape changes only the source's health and adds a snapshot row that
says why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Protocol

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.core import sources
from paperalerts.core.diff import DiffResult, assess, diff
from paperalerts.core.papers import Paper
from paperalerts.edges.db import models as m
from paperalerts.edges.db import repo
from paperalerts.edges.db.engine import transaction
from paperalerts.errors import FetchError, ParseError

log = logging.getLogger(__name__)

ScrapeStatus = Literal["ok", "quiet", "unchanged", "rejected", "failed"]


class FetchedLike(Protocol):
    """What the pipeline needs of a fetch result (see `paperalerts.edges.fetch.FetchResult`)."""

    @property
    def body(self) -> bytes: ...
    @property
    def etag(self) -> str | None: ...
    @property
    def last_modified(self) -> str | None: ...
    @property
    def not_modified(self) -> bool: ...


class FetcherLike(Protocol):
    def fetch(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> FetchedLike: ...


@dataclass(frozen=True)
class ScrapeOutcome:
    """What one scrape did. Expected outcomes (rejected, unchanged, quiet) are values."""

    source: str
    status: ScrapeStatus
    reason: str | None = None
    entry_count: int = 0
    new: tuple[tuple[str, str], ...] = ()  # (id, title) of papers that raise alerts
    updated: int = 0
    stored_new: int = 0  # new papers stored, alerts or not (a baseline stores without alerting)
    baseline: bool = False
    events: int = 0
    snapshot_id: int | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def rejected(self) -> bool:
        return self.status in ("rejected", "failed")


def _quiet_day(kind: str, body: bytes, now: datetime) -> bool:
    """An empty arXiv feed on one of its skipDays is a quiet day, not a broken feed."""
    if kind != "arxiv":
        return False
    from paperalerts.core.sources import arxiv

    return arxiv.is_quiet_day(body, now)


def _record_failure(
    session: Session,
    src: m.Source,
    now: datetime,
    status: ScrapeStatus,
    reason: str,
    failing_after: int,
) -> int:
    snap = m.Snapshot(source_id=src.id, fetched_at=now, status=status, error=reason)
    session.add(snap)
    src.consecutive_failures += 1
    # A source that never once worked is failing at once: "degraded" would read as "mostly fine".
    broken = src.consecutive_failures >= failing_after or src.last_success_at is None
    src.health = "failing" if broken else "degraded"
    src.failing_since = src.failing_since or now
    src.last_error = reason
    src.last_run_at = now
    session.flush()
    return snap.id


def _record_success(src: m.Source, now: datetime) -> None:
    src.consecutive_failures = 0
    src.health = "ok"
    src.failing_since = None
    src.last_error = None
    src.last_run_at = now
    src.last_success_at = now


def scrape_source(
    factory: sessionmaker[Session],
    source_id: int,
    *,
    fetcher: FetcherLike | None,
    now: datetime,
    body: bytes | None = None,
    failing_after: int = 3,
) -> ScrapeOutcome:
    """Scrape one source and record the outcome. `body` (e.g. `scrape --file`) skips the fetch.

    Returns the outcome; raises only for programming errors and database failures.
    """
    with transaction(factory) as s:
        src = s.get(m.Source, source_id)
        if src is None:
            raise LookupError(f"no source with id {source_id}")
        name, kind, url, options = src.name, src.kind, src.url, src.options
        etag, last_modified = src.etag, src.last_modified

    try:
        sources.check_options(kind, options)
    except sources.html_list.SelectorError as e:
        # The source's own settings are broken: no page will ever parse, so it is failing at
        # once (not "degraded", and never "ok"), and nothing is fetched.
        reason = f"options: {e}"
        return _reject(factory, source_id, name, now, "failed", reason, failing_after=1)
    fetched: FetchedLike | None = None
    try:
        if body is None:
            if fetcher is None:
                raise ValueError("scrape_source needs a fetcher or a body")
            fetched = fetcher.fetch(url, etag=etag, last_modified=last_modified)
            if fetched.not_modified:
                return _unchanged(factory, source_id, name, now)
            body = fetched.body
        entries = sources.parse(kind, body, url, options)
        quiet = not entries and _quiet_day(kind, body, now)
    except FetchError as e:
        return _reject(factory, source_id, name, now, "failed", f"fetch: {e}", failing_after)
    except ParseError as e:
        return _reject(factory, source_id, name, now, "rejected", f"parse: {e}", failing_after)

    for attempt in range(3):
        try:
            return _store(factory, source_id, name, now, entries, quiet, fetched, failing_after)
        except IntegrityError:
            # Another worker stored one of these papers first; diff again against what it wrote.
            if attempt == 2:
                raise
            log.info("scrape of %s raced another writer; retrying", name)
    raise AssertionError("unreachable")


def record_failed_scrape(
    factory: sessionmaker[Session],
    source_id: int,
    *,
    now: datetime,
    reason: str,
    failing_after: int = 3,
) -> ScrapeOutcome:
    """Record a scrape that did not finish (e.g. its task ran out of time) as failed, with
    `reason`, so the source's health says so instead of staying "ok"."""
    with factory() as s:
        name = s.get_one(m.Source, source_id).name
    return _reject(factory, source_id, name, now, "failed", reason, failing_after)


def _unchanged(
    factory: sessionmaker[Session], source_id: int, name: str, now: datetime
) -> ScrapeOutcome:
    with transaction(factory) as s:
        src = s.get_one(m.Source, source_id)
        snap = m.Snapshot(
            source_id=source_id,
            fetched_at=now,
            status="unchanged",
            entry_count=src.last_entry_count or 0,
        )
        s.add(snap)
        _record_success(src, now)
        s.flush()
        return ScrapeOutcome(
            name,
            "unchanged",
            "not modified (HTTP 304)",
            entry_count=src.last_entry_count or 0,
            snapshot_id=snap.id,
        )


def _reject(
    factory: sessionmaker[Session],
    source_id: int,
    name: str,
    now: datetime,
    status: ScrapeStatus,
    reason: str,
    failing_after: int,
) -> ScrapeOutcome:
    with transaction(factory) as s:
        src = s.get_one(m.Source, source_id)
        snap_id = _record_failure(s, src, now, status, reason, failing_after)
    log.warning("scrape of %s %s: %s", name, status, reason)
    return ScrapeOutcome(name, status, reason, snapshot_id=snap_id)


def _store(
    factory: sessionmaker[Session],
    source_id: int,
    name: str,
    now: datetime,
    entries: list[Paper],
    quiet: bool,
    fetched: FetchedLike | None,
    failing_after: int,
) -> ScrapeOutcome:
    """Assess the parsed entries against the source's recent counts, then (if healthy) diff
    them against every paper ever seen and store snapshot, papers, sightings and events, all in
    one transaction."""
    with transaction(factory) as s:
        src = s.get_one(m.Source, source_id)
        recent = repo.recent_healthy_counts(s, source_id)
        verdict = assess(len(entries), recent, quiet_day=quiet)
        if not verdict.healthy:
            reason = verdict.reason or "rejected"
            snap_id = _record_failure(s, src, now, "rejected", reason, failing_after)
            log.warning("scrape of %s rejected: %s", name, reason)
            return ScrapeOutcome(
                name, "rejected", reason, entry_count=len(entries), snapshot_id=snap_id
            )
        # The baseline is the first healthy scrape that listed anything: an empty first answer
        # must not turn the next real listing into an alert flood.
        baseline = not recent and not src.backfill
        known = repo.load_known(s, [p.id for p in entries])
        previous = repo.last_healthy_snapshot(s, source_id)
        result = diff(
            entries,
            {k: v[1] for k, v in known.items()},
            source_id,
            previous.entry_ids if previous else (),
        )
        status: ScrapeStatus = "quiet" if verdict.status == "quiet" else "ok"
        snap = _add_snapshot(s, source_id, now, status, result, baseline)
        # what rules saw before this scrape: matching sends an update only where a verdict turned
        before = {} if baseline else repo.paper_values(s, [c.paper.id for c in result.updated])
        _store_papers(s, source_id, now, result, {k: v[0] for k, v in known.items()})
        events = 0 if baseline else _add_events(s, source_id, snap.id, now, result, before)
        _record_scrape(src, now, status, result, baseline, fetched)
        s.flush()
        return ScrapeOutcome(
            name,
            status,
            verdict.reason if status == "quiet" else None,
            entry_count=len(result.entry_ids),
            new=() if baseline else tuple((c.paper.id, c.paper.title) for c in result.new),
            updated=0 if baseline else len(result.updated),
            stored_new=len(result.new),
            baseline=baseline,
            events=events,
            snapshot_id=snap.id,
        )


def _add_snapshot(
    s: Session,
    source_id: int,
    now: datetime,
    status: ScrapeStatus,
    result: DiffResult,
    baseline: bool,
) -> m.Snapshot:
    """The healthy scrape's snapshot row: what it listed, and (outside a baseline) the counts."""
    snap = m.Snapshot(
        source_id=source_id,
        fetched_at=now,
        status=status,
        entry_ids=result.entry_ids,
        entry_count=len(result.entry_ids),
        new_count=0 if baseline else len(result.new),
        updated_count=0 if baseline else len(result.updated),
        baseline=baseline,
    )
    s.add(snap)
    s.flush()
    return snap


def _store_papers(
    s: Session,
    source_id: int,
    now: datetime,
    result: DiffResult,
    rows: dict[str, m.Paper],
) -> None:
    """Write every new or changed paper (updating the known `rows` in place) and record that
    this source listed it now."""
    sightings = _sightings(s, source_id, [c.paper.id for c in result.to_store])
    for change in result.to_store:
        pid = change.paper.id
        if pid in rows:
            repo.write_paper(rows[pid], change.paper, now)
        else:
            s.add(repo.new_paper_row(change.paper, now))
        if pid in sightings:
            sightings[pid].last_seen_at = now
        else:
            s.add(
                m.PaperSource(
                    paper_id=pid, source_id=source_id, first_seen_at=now, last_seen_at=now
                )
            )


def _add_events(
    s: Session,
    source_id: int,
    snapshot_id: int,
    now: datetime,
    result: DiffResult,
    before: dict[str, Paper],
) -> int:
    """One event per new or updated paper (what matching reads), an update with the paper's
    values `before` it; returns how many."""
    s.flush()  # papers first: events reference them
    changes = (*result.new, *result.updated)
    for change in changes:
        s.add(
            m.PaperEvent(
                paper_id=change.paper.id,
                source_id=source_id,
                snapshot_id=snapshot_id,
                kind=change.kind,
                changes=dict(change.changes),
                previous=before[change.paper.id].to_json() if change.paper.id in before else None,
                at=now,
            )
        )
    return len(changes)


def _record_scrape(
    src: m.Source,
    now: datetime,
    status: ScrapeStatus,
    result: DiffResult,
    baseline: bool,
    fetched: FetchedLike | None,
) -> None:
    """The source's health and counters after a healthy scrape, and the validators for the next
    conditional GET."""
    _record_success(src, now)
    src.quiet_day = status == "quiet"
    src.last_entry_count = len(result.entry_ids)
    src.last_new_count = 0 if baseline else len(result.new)
    if fetched is not None:
        src.etag = fetched.etag
        src.last_modified = fetched.last_modified


def _sightings(s: Session, source_id: int, ids: list[str]) -> dict[str, m.PaperSource]:
    found: dict[str, m.PaperSource] = {}
    for i in range(0, len(ids), 500):
        q = select(m.PaperSource).where(
            m.PaperSource.source_id == source_id, m.PaperSource.paper_id.in_(ids[i : i + 500])
        )
        found.update((ps.paper_id, ps) for ps in s.scalars(q))
    return found


def claim_due_sources(factory: sessionmaker[Session], now: datetime) -> list[int]:
    """Ids of enabled sources whose next run is due, each claimed by moving its `next_run_at` one
    interval ahead in the same statement, so two ticks never enqueue the same scrape twice."""
    claimed: list[int] = []
    with transaction(factory) as s:
        due = s.scalars(
            select(m.Source).where(
                m.Source.enabled.is_(True),
                or_(m.Source.next_run_at.is_(None), m.Source.next_run_at <= now),
            )
        ).all()
        for src in due:
            res = s.execute(
                update(m.Source)
                .where(m.Source.id == src.id)
                .where(or_(m.Source.next_run_at.is_(None), m.Source.next_run_at <= now))
                .values(next_run_at=now + timedelta(seconds=src.every_seconds))
                .execution_options(synchronize_session=False)
            )
            if res.rowcount:  # type: ignore[attr-defined]  # CursorResult has rowcount
                claimed.append(src.id)
    return claimed

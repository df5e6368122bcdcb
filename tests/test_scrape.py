"""The scrape step and the diffing contract on real fixture pairs, both databases."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from conftest import fixture_file
from paperalerts.edges.db import models as m
from paperalerts.edges.db import repo
from paperalerts.edges.db.engine import transaction
from paperalerts.pipeline import scrape_source

T0 = datetime(2026, 8, 1, 6, 0, tzinfo=UTC)
HB = "hf_papers_rss_thirdparty/hfpapers_feed_huangboming_2026-08-{:02d}.xml"
RETRIEVAL = "arxiv_api/arxiv_api_query_all-retrieval_submittedDate-desc_2026-08-{}.xml"
AI = "arxiv_api/arxiv_api_query_all-AI_relevance_2026-02-{}.xml"
GUID_RE = re.compile(r'<guid isPermaLink="false">https://arxiv.org/abs/([\d.]+)</guid>')
ATOM_ID_RE = re.compile(r"<id>http://arxiv.org/abs/(\d{4}\.\d{4,5})v\d+</id>")
Factory = sessionmaker[Session]


def add_source(
    db: Factory,
    name: str,
    kind: str,
    *,
    backfill: bool = False,
    url: str = "https://example.org/feed",
) -> int:
    with transaction(db) as s:
        src = m.Source(name=name, kind=kind, url=url, backfill=backfill)
        s.add(src)
        s.flush()
        return src.id


def scrape_file(db: Factory, sid: int, rel: str, at: datetime) -> Any:
    return scrape_source(db, sid, fetcher=None, now=at, body=fixture_file(rel).read_bytes())


def events(db: Factory, kind: str | None = None) -> list[m.PaperEvent]:
    with db() as s:
        q = select(m.PaperEvent).order_by(m.PaperEvent.id)
        if kind:
            q = q.where(m.PaperEvent.kind == kind)
        return list(s.scalars(q))


def count(db: Factory, model: type[m.Base]) -> int:
    with db() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def raw_ids(rel: str, pattern: re.Pattern[str]) -> set[str]:
    return set(pattern.findall(fixture_file(rel).read_text()))


def test_first_scrape_is_a_baseline_without_events(db: Factory) -> None:
    """The first healthy scrape stores every paper but raises no event (no alert flood)."""
    sid = add_source(db, "hb", "feed")
    o = scrape_file(db, sid, HB.format(4), T0)
    assert o.status == "ok" and o.baseline and o.new == ()
    assert o.entry_count == 27 and o.stored_new == 27
    assert count(db, m.Paper) == 27
    assert events(db) == []


def test_backfill_source_alerts_on_its_first_scrape(db: Factory) -> None:
    """A source added with --backfill raises 'new' events for its first scrape."""
    sid = add_source(db, "hb", "feed", backfill=True)
    o = scrape_file(db, sid, HB.format(4), T0)
    assert not o.baseline and len(o.new) == 27
    assert {e.kind for e in events(db)} == {"new"} and len(events(db)) == 27


def test_day_change_gives_exactly_the_new_papers(db: Factory) -> None:
    """huangboming 08-04 -> 08-05: every id of 08-05 not in 08-04 is new; nothing else."""
    sid = add_source(db, "hb", "feed")
    scrape_file(db, sid, HB.format(4), T0)
    o = scrape_file(db, sid, HB.format(5), T0 + timedelta(days=1))
    expected = raw_ids(HB.format(5), GUID_RE) - raw_ids(HB.format(4), GUID_RE)
    assert len(expected) == 40
    assert {pid for pid, _ in o.new} == expected
    assert {e.paper_id for e in events(db, "new")} == expected
    assert events(db, "updated") == []


def test_same_papers_with_new_upvotes_are_updates_not_new(db: Factory) -> None:
    """huangboming 08-01 -> 08-02 (weekend): same 38 papers; changed upvotes are updates."""
    sid = add_source(db, "hb", "feed")
    scrape_file(db, sid, HB.format(1), T0)
    o = scrape_file(db, sid, HB.format(2), T0 + timedelta(days=1))
    assert o.new == ()
    up = re.compile(
        r"<link>https://arxiv.org/abs/([\d.]+)</link>\s*<description>.*?Upvotes:&lt;/b&gt; (\d+)",
        re.S,
    )
    before = dict(up.findall(fixture_file(HB.format(1)).read_text()))
    after = dict(up.findall(fixture_file(HB.format(2)).read_text()))
    changed = {k for k in before if before[k] != after[k]}
    assert len(changed) == 24
    upd = events(db, "updated")
    assert {e.paper_id for e in upd} == changed
    e = upd[0]
    assert e.changes["upvotes"] == [int(before[e.paper_id]), int(after[e.paper_id])]
    with db() as s:
        row = s.get_one(m.Paper, e.paper_id)
        assert row.upvotes == int(after[e.paper_id])


def test_arxiv_query_two_days_apart_all_new(db: Factory) -> None:
    """arxiv_api retrieval 08-12 -> 08-14: all 15 entries of 08-14 are new (unversioned ids)."""
    sid = add_source(db, "ax", "arxiv")
    scrape_file(db, sid, RETRIEVAL.format(12), T0)
    o = scrape_file(db, sid, RETRIEVAL.format(14), T0 + timedelta(days=2))
    expected = raw_ids(RETRIEVAL.format(14), ATOM_ID_RE)
    assert len(expected) == 15
    assert {pid for pid, _ in o.new} == expected


def test_identical_listing_a_day_later_is_nothing_new(db: Factory) -> None:
    """arxiv_api all:AI 02-19 -> 02-20: same 25 entries, so no event at all."""
    sid = add_source(db, "ax", "arxiv")
    scrape_file(db, sid, AI.format(19), T0)
    o = scrape_file(db, sid, AI.format(20), T0 + timedelta(days=1))
    assert o.status == "ok" and o.new == () and o.updated == 0 and o.entry_count == 25
    assert events(db) == []


def test_entry_that_drops_off_and_returns_is_not_new(db: Factory) -> None:
    """A paper missing from one scrape and listed again later raises no 'new' event."""
    sid = add_source(db, "hb", "feed")
    scrape_file(db, sid, HB.format(4), T0)
    scrape_file(db, sid, HB.format(5), T0 + timedelta(days=1))
    n_new = len(events(db, "new"))
    o = scrape_file(db, sid, HB.format(4), T0 + timedelta(days=2))
    assert o.new == () and len(events(db, "new")) == n_new


def test_paper_seen_through_two_sources_is_one_row_and_an_update(db: Factory) -> None:
    """The same arXiv id from a feed and from the arXiv API is one paper; the second source's
    listing of a known paper is an 'updated' event (it entered another list)."""
    feed = add_source(db, "hb", "feed")
    api = add_source(db, "ax", "arxiv")
    scrape_file(db, api, RETRIEVAL.format(12), T0)  # baseline of the arXiv source
    scrape_file(db, feed, HB.format(4), T0)  # baseline of the feed
    ids12 = raw_ids(RETRIEVAL.format(12), ATOM_ID_RE)
    # Replay the arXiv ids through the feed source by building a feed that lists one of them.
    pid = sorted(ids12)[0]
    body = fixture_file(HB.format(5)).read_bytes()
    first = GUID_RE.search(body.decode()).group(1)  # type: ignore[union-attr]
    body = body.replace(first.encode(), pid.encode())
    o = scrape_source(db, feed, fetcher=None, now=T0 + timedelta(days=1), body=body)
    assert pid not in {p for p, _ in o.new}
    upd = [e for e in events(db, "updated") if e.paper_id == pid]
    assert len(upd) == 1 and upd[0].changes["listed_by"] == feed
    with db() as s:
        assert s.scalar(select(func.count()).where(m.Paper.id == pid)) == 1
        assert s.scalar(select(func.count()).where(m.PaperSource.paper_id == pid)) == 2


def test_parse_error_is_rejected_and_changes_only_health(db: Factory) -> None:
    """A broken page is rejected with its reason; papers and events are untouched; the source
    goes ok -> degraded -> failing after `failing_after` rejections, and recovers on success."""
    sid = add_source(db, "hb", "feed")
    scrape_file(db, sid, HB.format(4), T0)
    papers_before = count(db, m.Paper)
    for i, health in enumerate(["degraded", "degraded", "failing"], start=1):
        o = scrape_source(
            db,
            sid,
            fetcher=None,
            now=T0 + timedelta(hours=i),
            body=b"<html><body>502 Bad Gateway</body></html>",
            failing_after=3,
        )
        assert o.rejected and o.reason and "parse" in o.reason
        with db() as s:
            src = s.get_one(m.Source, sid)
            assert (src.health, src.consecutive_failures) == (health, i)
            assert src.failing_since == T0 + timedelta(hours=1)
    assert count(db, m.Paper) == papers_before and events(db) == []
    with db() as s:
        snaps = s.scalars(select(m.Snapshot).order_by(m.Snapshot.id)).all()
        assert [x.status for x in snaps] == ["ok", "rejected", "rejected", "rejected"]
        assert snaps[-1].error and "parse" in snaps[-1].error
    o = scrape_file(db, sid, HB.format(5), T0 + timedelta(days=1))
    assert o.status == "ok" and len(o.new) == 40
    with db() as s:
        src = s.get_one(m.Source, sid)
        assert (src.health, src.consecutive_failures, src.failing_since) == ("ok", 0, None)


def hf_api_body(n: int) -> bytes:
    """A real 2024 hf-api day trimmed to its first n items (same shape, fewer entries)."""
    items = json.loads(
        fixture_file("hf_api_daily_papers/hf_api_daily_papers_2024-03-15.json").read_bytes()
    )
    return json.dumps(items[:n]).encode()


def test_zero_entries_where_source_had_some_is_rejected(db: Factory) -> None:
    """An empty list from a source that listed papers is rejected, not 'everything vanished'."""
    sid = add_source(db, "hf", "hf-api")
    scrape_source(db, sid, fetcher=None, now=T0, body=hf_api_body(14))
    o = scrape_source(db, sid, fetcher=None, now=T0 + timedelta(hours=1), body=b"[]")
    assert o.status == "rejected" and o.reason and "0 entries" in o.reason


def test_shrink_below_half_the_recent_median_is_rejected(db: Factory) -> None:
    """A scrape with fewer than half the recent median entries is rejected; then the next healthy
    scrape diffs against the last healthy snapshot, so nothing is re-reported as new."""
    sid = add_source(db, "hf", "hf-api")
    scrape_source(db, sid, fetcher=None, now=T0, body=hf_api_body(14))
    o = scrape_source(db, sid, fetcher=None, now=T0 + timedelta(hours=1), body=hf_api_body(6))
    assert o.status == "rejected" and o.reason and "median 14" in o.reason
    o = scrape_source(db, sid, fetcher=None, now=T0 + timedelta(hours=2), body=hf_api_body(7))
    assert o.status == "ok" and o.new == ()


def test_weekend_empty_arxiv_feed_is_a_quiet_day(db: Factory) -> None:
    """arXiv cs.CL on a Saturday is empty by design: a quiet day, health stays ok."""
    sid = add_source(db, "cl", "arxiv")
    scrape_file(db, sid, "arxiv_rss/arxiv_rss_cs.LG_2026-04-27_trimmed3.xml", T0)
    saturday = datetime(2026, 8, 1, 6, 0, tzinfo=UTC)
    o = scrape_file(db, sid, "arxiv_rss/arxiv_rss_cs.CL_2026-08-01_saturday_empty.xml", saturday)
    assert o.status == "quiet" and not o.rejected
    with db() as s:
        src = s.get_one(m.Source, sid)
        assert src.health == "ok" and src.quiet_day


def test_crash_mid_scrape_leaves_the_database_as_it_was(
    db: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One transaction: an exception half-way through writing leaves no paper, event or snapshot."""
    sid = add_source(db, "hb", "feed", backfill=True)
    calls = {"n": 0}
    real = repo.new_paper_row

    def crash_after_five(paper: Any, now: datetime) -> m.Paper:
        calls["n"] += 1
        if calls["n"] > 5:
            raise RuntimeError("worker died")
        return real(paper, now)

    monkeypatch.setattr(repo, "new_paper_row", crash_after_five)
    with pytest.raises(RuntimeError):
        scrape_file(db, sid, HB.format(4), T0)
    assert count(db, m.Paper) == 0 and count(db, m.Snapshot) == 0 and events(db) == []
    monkeypatch.undo()
    o = scrape_file(db, sid, HB.format(4), T0)
    assert len(o.new) == 27


def test_fetch_through_local_server_then_304_is_unchanged(db: Factory, static_server: str) -> None:
    """A real fetch stores Last-Modified; the next conditional GET gets 304 and is 'unchanged',
    never 'empty' (health ok, no rejection)."""
    from paperalerts.edges.fetch import Fetcher

    sid = add_source(db, "hb", "feed", url=f"{static_server}/{HB.format(4)}")
    with Fetcher(
        allow_private=True, retries=0, timeout=5, backoff=0, max_bytes=10**7, max_retry_after=0
    ) as f:
        o1 = scrape_source(db, sid, fetcher=f, now=T0)
        assert o1.status == "ok" and o1.entry_count == 27
        with db() as s:
            assert s.get_one(m.Source, sid).last_modified
        o2 = scrape_source(db, sid, fetcher=f, now=T0 + timedelta(hours=1))
    assert o2.status == "unchanged" and not o2.rejected


def test_fetch_failure_is_recorded_as_failed(db: Factory, static_server: str) -> None:
    """A 404 is a failed scrape with the status in its reason; nothing else changes."""
    from paperalerts.edges.fetch import Fetcher

    sid = add_source(db, "hb", "feed", url=f"{static_server}/no/such/feed.xml")
    with Fetcher(
        allow_private=True, retries=0, timeout=5, backoff=0, max_bytes=10**7, max_retry_after=0
    ) as f:
        o = scrape_source(db, sid, fetcher=f, now=T0)
    assert o.status == "failed" and o.reason and "404" in o.reason
    with db() as s:  # it never worked: failing at once (see the test below)
        assert s.get_one(m.Source, sid).health == "failing"


def test_a_source_that_never_worked_is_failing_at_its_first_failure(db: Factory) -> None:
    """A new source whose first scrape fails is "failing", not "degraded" (which reads as
    "mostly fine"); one that worked before is only degraded by one failure."""
    broken = b"<html><body>502 Bad Gateway</body></html>"
    new = add_source(db, "new", "feed")
    scrape_source(db, new, fetcher=None, now=T0, body=broken, failing_after=3)
    worked = add_source(db, "worked", "feed")
    scrape_file(db, worked, HB.format(4), T0)
    scrape_source(db, worked, fetcher=None, now=T0 + timedelta(hours=1), body=broken,
                  failing_after=3)  # fmt: skip
    with db() as s:
        assert s.get_one(m.Source, new).health == "failing"
        assert s.get_one(m.Source, worked).health == "degraded"


def test_fixture_paths_are_real_files() -> None:
    """Guard: the fixture pairs these tests rely on exist under the shared folder."""
    for rel in (HB.format(1), HB.format(2), HB.format(4), HB.format(5), RETRIEVAL.format(12)):
        assert Path(fixture_file(rel)).stat().st_size > 1000


def test_changing_a_source_url_drops_its_conditional_get_validators(db: Factory) -> None:
    """A new URL is fetched unconditionally: the old page's ETag/Last-Modified are cleared."""
    sid = add_source(db, "hb", "feed")
    with transaction(db) as s:
        src = s.get_one(m.Source, sid)
        src.etag, src.last_modified = '"abc"', "Tue, 04 Aug 2026 01:15:08 GMT"
    with transaction(db) as s:
        s.get_one(m.Source, sid).url = "https://example.org/other-feed"
    with db() as s:
        src = s.get_one(m.Source, sid)
        assert (src.etag, src.last_modified) == (None, None)

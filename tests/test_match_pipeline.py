"""The match step: unmatched events x active subscribers' rules -> match rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from conftest import fixture_file
from paperalerts.core.rules import parse, to_text
from paperalerts.edges.db import models as m
from paperalerts.edges.db import repo
from paperalerts.edges.db.engine import transaction
from paperalerts.pipeline import IndexCache, match_new_events, scrape_source
from paperalerts.pipeline import match as match_mod

T0 = datetime(2024, 3, 12, 6, 0, tzinfo=UTC)
Factory = sessionmaker[Session]


def day(date: str) -> list[dict[str, Any]]:
    rel = f"hf_api_daily_papers/hf_api_daily_papers_{date}.json"
    return list(json.loads(fixture_file(rel).read_bytes()))


def setup(db: Factory, *rules: str, status: str = "active", backfill: bool = True) -> int:
    with transaction(db) as s:
        s.add(m.Source(name="hf-daily", kind="hf-api", url="https://e.org/api", backfill=backfill))
        sub = m.Subscriber(email="ann@example.org", status=status)
        s.add(sub)
        s.flush()
        for q in rules:
            s.add(m.Rule(subscriber_id=sub.id, query=q, normalized=to_text(parse(q))))
        repo.bump_rules_version(s)
        return sub.id


def scrape(db: Factory, items: list[dict[str, Any]], at: datetime) -> None:
    with db() as s:
        sid = s.scalars(select(m.Source.id)).one()
    scrape_source(db, sid, fetcher=None, now=at, body=json.dumps(items).encode())


def matches(db: Factory) -> list[m.Match]:
    with db() as s:
        return list(s.scalars(select(m.Match).order_by(m.Match.paper_id)))


def unmatched(db: Factory) -> int:
    with db() as s:
        q = select(func.count()).select_from(m.PaperEvent).where(m.PaperEvent.matched_at.is_(None))
        return int(s.scalar(q) or 0)


def test_events_matched_once_and_cursor_advanced(db: Factory) -> None:
    """Each event is consumed once; a matching paper gets one row with its explanation."""
    setup(db, '"language model"')
    scrape(db, day("2024-03-12"), T0)
    assert unmatched(db) == 9
    out = match_new_events(db, now=T0, batch_size=4)
    assert (out.events, out.batches) == (9, 3)
    assert unmatched(db) == 0
    rows = matches(db)
    # the four papers of that day whose title or abstract says "language model(s)"
    assert [r.paper_id for r in rows] == ["2403.05812", "2403.06504", "2403.06634", "2403.06764"]
    expl = rows[2].explanation["rules"][0]
    assert expl["terms"] == ['"language model"']
    title = "Stealing Part of a Production Language Model"
    title_hit = next(h for h in expl["hits"] if h["field"] == "title")
    assert title[title_hit["start"] : title_hit["end"]] == "Language Model"
    again = match_new_events(db, now=T0 + timedelta(minutes=1))
    assert again.events == 0 and len(matches(db)) == 4


def test_crash_mid_batch_rematches_without_duplicates(
    db: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after match rows were added rolls the batch back; the rerun adds each once."""
    setup(db, "model")
    scrape(db, day("2024-03-12"), T0)
    real = match_mod._match_batch

    def crash(*a: Any, **kw: Any) -> Any:
        real(*a, **kw)
        raise RuntimeError("worker killed mid-batch")

    monkeypatch.setattr(match_mod, "_match_batch", crash)
    with pytest.raises(RuntimeError):
        match_new_events(db, now=T0)
    assert matches(db) == [] and unmatched(db) == 9
    monkeypatch.undo()
    out = match_new_events(db, now=T0)
    rows = matches(db)
    assert out.matches == len(rows) > 0
    assert len({r.paper_id for r in rows}) == len(rows)


def test_threshold_rule_fires_when_an_update_crosses_it_and_only_once(db: Factory) -> None:
    """upvotes:>=70 does not match at 63 upvotes, fires when an update lifts it to 70, and a
    further rise adds no second row."""
    setup(db, "upvotes:>=70")
    items = day("2024-03-12")
    stealing = next(i for i in items if i["paper"]["id"] == "2403.06634")
    assert stealing["paper"]["upvotes"] == 63
    scrape(db, items, T0)
    match_new_events(db, now=T0)
    assert "2403.06634" not in {r.paper_id for r in matches(db)}
    stealing["paper"]["upvotes"] = 70
    scrape(db, items, T0 + timedelta(hours=1))
    out = match_new_events(db, now=T0 + timedelta(hours=1))
    assert out.events == 1 and [r.paper_id for r in matches(db)] == ["2403.06634"]
    stealing["paper"]["upvotes"] = 90
    scrape(db, items, T0 + timedelta(hours=2))
    assert match_new_events(db, now=T0 + timedelta(hours=2)).matches == 0
    assert len(matches(db)) == 1


def test_paused_subscriber_gets_no_match(db: Factory) -> None:
    """Only active subscribers' rules produce matches."""
    setup(db, "model", status="paused")
    scrape(db, day("2024-03-12"), T0)
    assert match_new_events(db, now=T0).events == 9
    assert matches(db) == []


def test_topic_rule_fans_out_and_two_rules_share_one_row(db: Factory) -> None:
    """A topic matches for each follower; a paper matched by a personal rule and a topic is one
    row listing both."""
    sub = setup(db, "stealing")
    with transaction(db) as s:
        t = m.Topic(name="LLMs", query="language", normalized="language")
        s.add(t)
        s.flush()
        s.add(m.SubscriberTopic(subscriber_id=sub, topic_id=t.id))
        bob = m.Subscriber(email="bob@example.org", status="active")
        s.add(bob)
        s.flush()
        s.add(m.SubscriberTopic(subscriber_id=bob.id, topic_id=t.id))
        repo.bump_rules_version(s)
    scrape(db, day("2024-03-12"), T0)
    match_new_events(db, now=T0)
    rows = [r for r in matches(db) if r.paper_id == "2403.06634"]
    assert len(rows) == 2
    ann = next(r for r in rows if r.subscriber_id == sub)
    assert sorted(e["name"] for e in ann.explanation["rules"]) == ["LLMs", "stealing"]


def test_index_rebuilt_only_when_rules_change(db: Factory) -> None:
    """The compiled index is reused across calls until the rules version moves."""
    sub = setup(db, "model")
    cache = IndexCache()
    scrape(db, day("2024-03-12"), T0)
    match_new_events(db, now=T0, cache=cache, batch_size=2)
    assert cache.builds == 1
    scrape(db, day("2024-03-13"), T0 + timedelta(days=1))
    match_new_events(db, now=T0, cache=cache)
    assert cache.builds == 1
    with transaction(db) as s:
        s.add(m.Rule(subscriber_id=sub, query="video", normalized="video"))
        repo.bump_rules_version(s)
    scrape(db, day("2024-03-15"), T0 + timedelta(days=2))
    match_new_events(db, now=T0, cache=cache)
    assert cache.builds == 2


def test_any_rule_change_moves_the_rules_version_without_an_explicit_bump(db: Factory) -> None:
    """Adding, editing or deleting a rule or topic through the ORM moves the version in the same
    transaction, so the matcher can never keep a stale index."""
    setup(db, "model")
    versions = []
    with db() as s:
        versions.append(repo.rules_version(s))
    with transaction(db) as s:
        sub = s.scalars(select(m.Subscriber)).one()
        rule = m.Rule(subscriber_id=sub.id, query="video", normalized="video")
        s.add(rule)
    with transaction(db) as s:
        s.scalars(select(m.Rule).where(m.Rule.query == "video")).one().query = "videos"
    with transaction(db) as s:
        s.delete(s.scalars(select(m.Rule).where(m.Rule.query == "videos")).one())
    with transaction(db) as s:
        s.add(m.Topic(name="T", query="x", normalized="x"))
    with db() as s:
        final = repo.rules_version(s)
    assert final == versions[0] + 4
    with transaction(db) as s:  # an unrelated change does not move it
        s.scalars(select(m.Subscriber)).one().name = "Ann"
    with db() as s:
        assert repo.rules_version(s) == final

"""No writer can forget the rules version: every change to rules, topics or topic follows, bulk
statements included, moves it, so a worker's cached index never keeps matching stale rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from conftest import fixture_file
from paperalerts.edges.db import models as m
from paperalerts.edges.db import repo
from paperalerts.edges.db.engine import transaction
from paperalerts.pipeline import IndexCache, match_new_events, scrape_source
from paperalerts.pipeline import subscriptions as subs

T0 = datetime(2024, 3, 12, 6, 0, tzinfo=UTC)
Factory = sessionmaker[Session]


def _day(date: str) -> bytes:
    return fixture_file(f"hf_api_daily_papers/hf_api_daily_papers_{date}.json").read_bytes()


def _scrape(db: Factory, date: str, at: datetime) -> None:
    with db() as s:
        sid = s.scalars(select(m.Source.id)).one()
    scrape_source(db, sid, fetcher=None, now=at, body=_day(date))


def _topic_matches(db: Factory, sub_id: int, topic_id: int) -> list[str]:
    with db() as s:
        return list(s.scalars(select(m.Match.paper_id).where(
            m.Match.subscriber_id == sub_id, m.Match.topic_id == topic_id)))


def test_unfollowing_a_topic_stops_a_cached_index_matching_it(db: Factory) -> None:
    """A worker's cached index is rebuilt after a subscriber unfollows a topic (a bulk DELETE of
    the follow), so the next scrape brings no more matches from that topic."""
    with transaction(db) as s:
        s.add(m.Source(name="hf-daily", kind="hf-api", url="https://e.org/api", backfill=True))
        sub = m.Subscriber(email="ann@example.org", status="active")
        topic = m.Topic(name="Everything", query="the", normalized="the", public=True)
        s.add_all([sub, topic])
        s.flush()
        s.add(m.SubscriberTopic(subscriber_id=sub.id, topic_id=topic.id))
        sub_id, topic_id = sub.id, topic.id
    cache = IndexCache()
    _scrape(db, "2024-03-12", T0)
    match_new_events(db, now=T0, cache=cache)
    assert _topic_matches(db, sub_id, topic_id), "the topic matches before the unfollow"
    with transaction(db) as s:
        subs.set_topics(s, s.get_one(m.Subscriber, sub_id), set(), "subscriber")
    with db() as s:
        assert not list(s.scalars(select(m.SubscriberTopic)))
    before = set(_topic_matches(db, sub_id, topic_id))
    _scrape(db, "2024-03-13", T0 + timedelta(days=1))
    match_new_events(db, now=T0 + timedelta(days=1), cache=cache)
    assert set(_topic_matches(db, sub_id, topic_id)) == before, "an unfollowed topic matched"


def test_bulk_statements_on_watched_tables_move_the_version(db: Factory) -> None:
    """A bulk UPDATE or DELETE of rules, topics or follows, issued by any writer through a
    session, moves the rules version in the same transaction."""
    with transaction(db) as s:
        sub = m.Subscriber(email="bo@example.org", status="active")
        topic = m.Topic(name="T", query="x", normalized="x")
        s.add_all([sub, topic])
        s.flush()
        s.add(m.Rule(subscriber_id=sub.id, query="y", normalized="y"))
        s.add(m.SubscriberTopic(subscriber_id=sub.id, topic_id=topic.id))
    statements: list[Any] = [
        delete(m.SubscriberTopic),
        m.Rule.__table__.update().values(enabled=False),
        delete(m.Rule),
        delete(m.Topic),
    ]
    for stmt in statements:
        with db() as s:
            version = repo.rules_version(s)
        with transaction(db) as s:
            s.execute(stmt)
        with db() as s:
            assert repo.rules_version(s) > version, f"{stmt} did not move the version"

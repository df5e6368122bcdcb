"""Feedback storage (issue 13) on SQLite and PostgreSQL: replay protection by the unique link key
(also under two concurrent clicks), undo restoring the state before, a follow owning its author
rule through mute and undo, and recommendations stored once per delivery."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from feedback_support import LG_OR_AI, RETRIEVAL_DAY1, arxiv_fixture
from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.faces.web import feedback_ops as ops
from paperalerts.pipeline.recommend import (
    RecommendConfig,
    attach_recommendations,
    train_recommendations,
)
from web_support import SECRET, add_subscriber, seed_papers

NOW = datetime(2026, 8, 13, 9, 0, tzinfo=UTC)


def _setup(db: sessionmaker[Session]) -> tuple[int, list[str]]:
    papers = arxiv_fixture(RETRIEVAL_DAY1)
    seed_papers(db, papers, NOW - timedelta(days=1))
    return add_subscriber(db, "store@example.org", now=NOW), [p.id for p in papers]


def _apply(db: sessionmaker[Session], sid: int, pid: str, action: Any, **kw: Any) -> Any:
    with transaction(db) as s:
        return ops.apply(s, s.get_one(m.Subscriber, sid), pid, action, now=NOW, **kw)


def test_a_link_key_applies_once_and_undo_restores_the_state_before(db: Any) -> None:
    """The same use_key is Replayed (nothing changes); undo puts back the earlier verdict and an
    undone event cannot be undone twice."""
    sid, ids = _setup(db)
    assert isinstance(_apply(db, sid, ids[0], "less", use_key="d1:a:less"), ops.Applied)
    done = _apply(db, sid, ids[0], "more", use_key="d1:a:more")
    assert isinstance(done, ops.Applied)
    assert isinstance(_apply(db, sid, ids[0], "more", use_key="d1:a:more"), ops.Replayed)
    with transaction(db) as s:
        assert isinstance(ops.undo(s, s.get_one(m.Subscriber, sid), done.event_id, NOW),
                          ops.Applied)
    with transaction(db) as s:
        assert isinstance(ops.undo(s, s.get_one(m.Subscriber, sid), done.event_id, NOW),
                          ops.Replayed)
        assert s.scalars(select(m.Feedback.label)).all() == ["less"]
        assert len(s.scalars(select(m.FeedbackEvent)).all()) == 2


def test_two_concurrent_clicks_of_one_link_apply_it_once(db: Any) -> None:
    """Two requests with the same link at once: one Applied, one Replayed, one event row."""
    sid, ids = _setup(db)
    results: list[Any] = []
    barrier = threading.Barrier(2)

    def click() -> None:
        barrier.wait()
        try:
            results.append(_apply(db, sid, ids[1], "more", use_key="d7:x:more"))
        except Exception as e:  # a lost race on SQLite's lock would be a result too
            results.append(e)

    threads = [threading.Thread(target=click) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    kinds = sorted(type(r).__name__ for r in results)
    assert kinds == ["Applied", "Replayed"], results
    with db() as s:
        assert len(s.scalars(select(m.FeedbackEvent)).all()) == 1


def test_follow_owns_its_rule_through_mute_and_undo(db: Any) -> None:
    """Follow adds author:"Name"; muting the same author removes that rule; undoing the mute
    follows again with a new rule."""
    sid, ids = _setup(db)
    papers = {p.id: p for p in arxiv_fixture(RETRIEVAL_DAY1)}
    name = papers[ids[2]].authors[0]
    _apply(db, sid, ids[2], "follow")
    with db() as s:
        assert s.scalars(select(m.Rule.query)).all() == [f'author:"{name}"']
    muted = _apply(db, sid, ids[2], "mute")
    with db() as s:
        assert s.scalars(select(m.Rule.query)).all() == []
        assert s.scalars(select(m.AuthorPref.action)).all() == ["mute"]
    with transaction(db) as s:
        ops.undo(s, s.get_one(m.Subscriber, sid), muted.event_id, NOW)
    with db() as s:
        assert s.scalars(select(m.Rule.query)).all() == [f'author:"{name}"']
        pref = s.scalars(select(m.AuthorPref)).one()
        assert pref.action == "follow" and pref.rule_id is not None


def test_recommendations_are_stored_once_per_delivery(db: Any) -> None:
    """After enough likes, the bulk step stores at most max_items recommendations of papers
    first seen since the last digest, never a judged one, a muted author's, or one matched; a
    digest delivery takes them, and taking them again changes nothing."""
    sid, ids = _setup(db)
    with transaction(db) as s:
        for pid in ids:
            s.add(m.Match(subscriber_id=sid, paper_id=pid, matched_at=NOW))
    for pid in ids[:2]:
        _apply(db, sid, pid, "more")
    new = arxiv_fixture(LG_OR_AI)
    seed_papers(db, new, NOW + timedelta(hours=1))
    _apply(db, sid, new[0].id, "less")
    with transaction(db) as s:
        s.add(m.AuthorPref(subscriber_id=sid, author_key=new[1].authors[0].lower(),
                           author_name=new[1].authors[0], action="mute"))
        d = m.Delivery(subscriber_id=sid, kind="digest", period_key="2026-08-14")
        s.add(d)
        s.flush()
        did = d.id
    cfg = RecommendConfig("http://x", SECRET, min_positives=2, max_items=4)
    later = NOW + timedelta(days=1)
    count = train_recommendations(db, cfg, now=later).rows
    assert 1 <= count <= 4
    assert attach_recommendations(db, did) == count
    assert attach_recommendations(db, did) == count
    with db() as s:
        recs = list(s.scalars(select(m.Recommendation.paper_id)))
    assert len(recs) == count
    assert not set(recs) & ({new[0].id, new[1].id} | set(ids))

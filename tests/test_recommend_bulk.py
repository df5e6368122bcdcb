"""Recommendations off the send path (issue 18): trained in bulk for every engaged subscriber over
one vocabulary, stored as pending rows, and only attached when a digest is sent (SQLite and
PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from feedback_support import LG_OR_AI, RETRIEVAL_DAY1, RETRIEVAL_DAY2, arxiv_fixture
from paperalerts.core.recommend import Job, recommend_many
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
CFG = RecommendConfig("http://x", SECRET, min_positives=2, max_items=3)


def test_many_jobs_share_one_vocabulary_and_keep_apart() -> None:
    """Two subscribers in one call: each gets only candidates of their own, never a paper they
    have seen, and one below the gate gets nothing."""
    day1, day2, lg = (arxiv_fixture(f) for f in (RETRIEVAL_DAY1, RETRIEVAL_DAY2, LG_OR_AI))
    papers = {p.id: p for p in [*day1, *day2, *lg]}
    jobs = [
        Job(1, [(p.id, 1) for p in day1[:3]], [p.id for p in lg]),
        Job(2, [(p.id, 1) for p in lg[:3]] + [(p.id, -1) for p in lg[3:6]], [p.id for p in day2]),
        Job(3, [(day1[0].id, 1)], [p.id for p in lg]),
    ]
    out = recommend_many(jobs, papers, min_positives=2, limit=3)
    assert set(out) == {1, 2}
    assert {r.paper_id for r in out[1]} <= {p.id for p in lg}
    assert {r.paper_id for r in out[2]} <= {p.id for p in day2}
    assert all(r.terms for rs in out.values() for r in rs)


def _engaged(db: Any, email: str, likes: int) -> tuple[int, list[str]]:
    sid = add_subscriber(db, email, now=NOW)
    ids = [p.id for p in arxiv_fixture(RETRIEVAL_DAY1)]
    with transaction(db) as s:
        for pid in ids:
            s.add(m.Match(subscriber_id=sid, paper_id=pid, matched_at=NOW))
    for pid in ids[:likes]:
        with transaction(db) as s:
            ops.apply(s, s.get_one(m.Subscriber, sid), pid, "more", now=NOW)
    return sid, ids


def _digest(db: Any, sid: int, day: str) -> int:
    with transaction(db) as s:
        d = m.Delivery(subscriber_id=sid, kind="digest", period_key=day)
        s.add(d)
        s.flush()
        return d.id


def test_bulk_step_stores_pending_rows_that_a_send_only_attaches(db: Any) -> None:
    """Engaged subscribers get up to max_items pending rows, the others none; attaching gives
    them to the digest without training (no new rows appear), and a new bulk run replaces only
    what no digest took."""
    seed_papers(db, arxiv_fixture(RETRIEVAL_DAY1), NOW - timedelta(days=1))
    a, seen = _engaged(db, "a@example.org", likes=2)
    b, _ = _engaged(db, "b@example.org", likes=1)  # below the gate
    seed_papers(db, arxiv_fixture(LG_OR_AI), NOW + timedelta(hours=1))
    later = NOW + timedelta(days=1)
    out = train_recommendations(db, CFG, now=later)
    assert (out.engaged, out.recommended) == (1, 1) and 1 <= out.rows <= 3
    with db() as s:
        pending = {(r.subscriber_id, r.delivery_id) for r in s.scalars(select(m.Recommendation))}
    assert pending == {(a, None)}

    did = _digest(db, a, "2026-08-14")
    assert attach_recommendations(db, did) == out.rows
    with db() as s:
        rows = list(s.scalars(select(m.Recommendation)))
    assert {r.delivery_id for r in rows} == {did} and len(rows) == out.rows
    assert not {r.paper_id for r in rows} & set(seen)
    assert attach_recommendations(db, _digest(db, b, "2026-08-14")) == 0

    again = train_recommendations(db, CFG, now=later)  # the attached rows stay, once each
    with db() as s:
        ids = list(s.scalars(select(m.Recommendation.paper_id)))
        attached = s.scalar(
            select(func.count()).where(m.Recommendation.delivery_id == did)
        )
    assert attached == out.rows and len(ids) == len(set(ids)) == out.rows + again.rows


def test_a_send_trains_nothing(db: Any, sink: Any) -> None:
    """Sending an engaged subscriber's digest with no bulk run before stores no recommendation:
    nothing is trained on the send path (it used to fit a model per digest)."""
    from paperalerts.edges.mailer import SMTPMailer
    from paperalerts.pipeline.compose import DeliveryConfig
    from paperalerts.pipeline.deliver import send_delivery

    seed_papers(db, arxiv_fixture(RETRIEVAL_DAY1), NOW - timedelta(days=1))
    a, _ = _engaged(db, "a@example.org", likes=3)
    seed_papers(db, arxiv_fixture(LG_OR_AI), NOW + timedelta(hours=1))
    did = _digest(db, a, "2026-08-14")
    with transaction(db) as s:
        s.execute(m.Match.__table__.update().values(delivery_id=did))
    cfg = DeliveryConfig("http://x", SECRET, "A <a@example.org>", "example.org",
                         recommend_min_positives=2)
    mailer = SMTPMailer(sink.url, timeout=10)
    try:
        out = send_delivery(db, did, mailer=mailer, cfg=cfg, now=NOW + timedelta(days=1))
    finally:
        mailer.close()
    assert out.status == "sent"
    with db() as s:
        assert s.scalar(select(func.count()).select_from(m.Recommendation)) == 0

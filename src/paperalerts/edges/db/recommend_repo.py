"""The bulk recommendation step's queries: a fixed number per chunk of subscribers, not per one.

Recommendations are trained ahead of the send (`pipeline.recommend.train_recommendations`) and
kept as *pending* rows (``delivery_id`` NULL) until a digest takes them (`attach`). The reads
follow `feedback_repo`'s per-subscriber definitions (what was seen, what may be recommended),
for many subscribers at once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from paperalerts.edges.db import models as m
from paperalerts.edges.db.feedback_repo import CANDIDATES_MAX, SEEN_MAX

_IN_MAX = 5000  # ids per IN list: PostgreSQL takes at most 65,535 parameters per statement


def _chunks(ids: Sequence[int]) -> Iterable[list[int]]:
    for lo in range(0, len(ids), _IN_MAX):
        yield list(ids[lo : lo + _IN_MAX])


def engaged(s: Session, min_positives: int) -> list[int]:
    """Active subscribers with at least `min_positives` "more like this", by id."""
    q = (
        select(m.Feedback.subscriber_id)
        .join(m.Subscriber, m.Subscriber.id == m.Feedback.subscriber_id)
        .where(m.Feedback.label == "more", m.Subscriber.status == "active")
        .group_by(m.Feedback.subscriber_id)
        .having(func.count() >= max(min_positives, 1))
        .order_by(m.Feedback.subscriber_id)
    )
    return list(s.scalars(q))


def seen(s: Session, subs: Sequence[int]) -> dict[int, list[tuple[str, int]]]:
    """Per subscriber, as `feedback_repo.training_set`: papers given feedback on, delivered
    matches and recommendations shown, newest first, at most `SEEN_MAX`, labelled +1 / -1 / 0."""
    sign = {"more": 1, "less": -1}
    out: dict[int, dict[str, int]] = defaultdict(dict)
    for chunk in _chunks(subs):
        for sid, pid, label in s.execute(
            select(m.Feedback.subscriber_id, m.Feedback.paper_id, m.Feedback.label).where(
                m.Feedback.subscriber_id.in_(chunk)
            )
        ):
            out[sid][pid] = sign.get(label, 0)
        delivered = select(m.Match.subscriber_id, m.Match.paper_id, m.Match.matched_at).where(
            m.Match.subscriber_id.in_(chunk), m.Match.delivery_id.is_not(None)
        )
        rec = m.Recommendation
        shown = select(rec.subscriber_id, rec.paper_id, rec.created_at).where(
            rec.subscriber_id.in_(chunk), rec.delivery_id.is_not(None)
        )
        for q in (delivered, shown):
            for sid, pid, _ in s.execute(q.order_by(q.selected_columns[2].desc())):
                if len(out[sid]) < SEEN_MAX:
                    out[sid].setdefault(pid, 0)
    return {sid: list(labels.items()) for sid, labels in out.items()}


def last_digest(s: Session, subs: Sequence[int]) -> dict[int, datetime]:
    """When each subscriber's last digest or alert was sent (absent: never)."""
    out: dict[int, datetime] = {}
    for chunk in _chunks(subs):
        q = (
            select(m.Delivery.subscriber_id, func.max(m.Delivery.sent_at))
            .where(m.Delivery.subscriber_id.in_(chunk), m.Delivery.status == "sent")
            .group_by(m.Delivery.subscriber_id)
        )
        out.update({sid: at for sid, at in s.execute(q) if at is not None})
    return out


def recent(s: Session, since: datetime) -> list[tuple[str, datetime]]:
    """Papers first seen after `since`, newest first, at most `CANDIDATES_MAX`: (id, when)."""
    q = (
        select(m.Paper.id, m.Paper.first_seen_at)
        .where(m.Paper.first_seen_at > since)
        .order_by(m.Paper.first_seen_at.desc(), m.Paper.id)
        .limit(CANDIDATES_MAX)
    )
    return [(pid, at) for pid, at in s.execute(q)]


def excluded(s: Session, subs: Sequence[int], papers: Sequence[str]) -> dict[int, set[str]]:
    """Per subscriber, which of `papers` they may not be recommended: matched (sent or not),
    recommended before (shown or pending) or judged."""
    out: dict[int, set[str]] = defaultdict(set)
    if not papers:
        return out
    for chunk in _chunks(subs):
        for model in (m.Match, m.Recommendation, m.Feedback):
            q: Any = select(model.subscriber_id, model.paper_id).where(
                model.subscriber_id.in_(chunk), model.paper_id.in_(list(papers))
            )
            for sid, pid in s.execute(q):
                out[sid].add(pid)
    return out


def muted(s: Session, subs: Sequence[int]) -> dict[int, set[str]]:
    """Per subscriber, the keys and HF ids of the authors they muted."""
    out: dict[int, set[str]] = defaultdict(set)
    for chunk in _chunks(subs):
        q = select(m.AuthorPref.subscriber_id, m.AuthorPref.author_key, m.AuthorPref.hf_id).where(
            m.AuthorPref.subscriber_id.in_(chunk), m.AuthorPref.action == "mute"
        )
        for sid, key, hf in s.execute(q):
            out[sid].add(key)
            if hf:
                out[sid].add(hf)
    return out


def drop_pending(s: Session, subs: Sequence[int]) -> int:
    """Forget the recommendations no digest took yet (a new training replaces them)."""
    n = 0
    for chunk in _chunks(subs):
        result: Any = s.execute(
            delete(m.Recommendation).where(
                m.Recommendation.subscriber_id.in_(chunk), m.Recommendation.delivery_id.is_(None)
            )
        )
        n += int(result.rowcount or 0)
    return n


def store_pending(s: Session, rows: list[dict[str, Any]]) -> None:
    """Insert pending recommendation rows (subscriber_id, paper_id, score, terms, created_at)
    in one executemany."""
    if rows:
        s.execute(insert(m.Recommendation), rows)


def attach(s: Session, sub_id: int, delivery_id: int) -> int:
    """Give a digest its subscriber's pending recommendations, unless it has some already (a
    resend keeps what the first attempt showed). Returns how many it has."""
    has = s.scalar(
        select(func.count()).where(m.Recommendation.delivery_id == delivery_id)
    )
    if has:
        return int(has)
    result: Any = s.execute(
        update(m.Recommendation)
        .where(m.Recommendation.subscriber_id == sub_id, m.Recommendation.delivery_id.is_(None))
        .values(delivery_id=delivery_id)
    )
    return int(result.rowcount or 0)

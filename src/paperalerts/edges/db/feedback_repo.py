"""Feedback and recommendation queries (issue 13): rows in, values out.

What the recommender trains on, what a digest must suppress, what the manage page lists and
what the admin counts. Writes live in `paperalerts.pipeline.feedback`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from paperalerts.core.papers import Paper
from paperalerts.edges.db import models as m
from paperalerts.edges.db import repo

SEEN_MAX = 2000
CANDIDATES_MAX = 1000


def labels(s: Session, sub_id: int) -> dict[str, str]:
    """paper id -> "more" / "less" for one subscriber."""
    q = select(m.Feedback.paper_id, m.Feedback.label).where(m.Feedback.subscriber_id == sub_id)
    return {pid: label for pid, label in s.execute(q)}


def positives(s: Session, sub_id: int) -> int:
    q = select(func.count()).where(m.Feedback.subscriber_id == sub_id, m.Feedback.label == "more")
    return int(s.scalar(q) or 0)


def muted_keys(s: Session, sub_id: int) -> set[str]:
    """The normalised names and HF ids of the authors a subscriber muted."""
    q = select(m.AuthorPref.author_key, m.AuthorPref.hf_id).where(
        m.AuthorPref.subscriber_id == sub_id, m.AuthorPref.action == "mute"
    )
    out: set[str] = set()
    for key, hf in s.execute(q):
        out.add(key)
        if hf:
            out.add(hf)
    return out


def training_set(s: Session, sub_id: int) -> list[tuple[Paper, int]]:
    """The papers a subscriber has seen (delivered matches, recommendations shown, anything they
    gave feedback on), newest first, at most `SEEN_MAX`, labelled +1 more / -1 less / 0 none."""
    given = labels(s, sub_id)
    delivered = (
        select(m.Match.paper_id, m.Match.matched_at.label("at"))
        .where(m.Match.subscriber_id == sub_id, m.Match.delivery_id.is_not(None))
    )
    shown = select(m.Recommendation.paper_id, m.Recommendation.created_at.label("at")).where(
        m.Recommendation.subscriber_id == sub_id
    )
    ids: dict[str, None] = dict.fromkeys(given)
    for q in (delivered, shown):
        for pid, _ in s.execute(q.order_by(q.selected_columns[1].desc()).limit(SEEN_MAX)):
            ids.setdefault(pid)
    papers = repo.paper_values(s, list(ids)[:SEEN_MAX])
    sign = {"more": 1, "less": -1}
    return [(p, sign.get(given.get(pid, ""), 0)) for pid, p in papers.items()]


def last_digest_at(s: Session, sub_id: int, exclude: int) -> datetime | None:
    """When the subscriber's previous digest or alert (not `exclude`) was sent."""
    q = select(func.max(m.Delivery.sent_at)).where(
        m.Delivery.subscriber_id == sub_id, m.Delivery.id != exclude, m.Delivery.status == "sent"
    )
    return s.scalar(q)


def candidates(s: Session, sub_id: int, since: datetime) -> list[Paper]:
    """Papers first seen after `since` that the subscriber has not been sent, recommended or
    given feedback on; newest first, at most `CANDIDATES_MAX`."""
    matched = select(m.Match.paper_id).where(m.Match.subscriber_id == sub_id)
    recommended = select(m.Recommendation.paper_id).where(m.Recommendation.subscriber_id == sub_id)
    judged = select(m.Feedback.paper_id).where(m.Feedback.subscriber_id == sub_id)
    q = (
        select(m.Paper.id)
        .where(m.Paper.first_seen_at > since)
        .where(m.Paper.id.not_in(matched), m.Paper.id.not_in(recommended))
        .where(m.Paper.id.not_in(judged))
        .order_by(m.Paper.first_seen_at.desc(), m.Paper.id)
        .limit(CANDIDATES_MAX)
    )
    ids = list(s.scalars(q))
    values = repo.paper_values(s, ids)
    return [values[i] for i in ids if i in values]


def delivery_recommendations(s: Session, delivery_id: int) -> list[m.Recommendation]:
    q = (
        select(m.Recommendation)
        .where(m.Recommendation.delivery_id == delivery_id)
        .order_by(m.Recommendation.score.desc(), m.Recommendation.id)
    )
    return list(s.scalars(q))


@dataclass(frozen=True)
class NoiseRow:
    """Feedback on the papers one rule or topic brought (or on recommendations)."""

    kind: str  # rule / topic / recommendation
    id: int | None
    name: str
    more: int
    less: int

    @property
    def noise(self) -> float | None:
        """Share of "not relevant" among the verdicts (None when there are none)."""
        total = self.more + self.less
        return None if total == 0 else self.less / total


def _counts() -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    more = func.sum(case((m.Feedback.label == "more", 1), else_=0))
    less = func.sum(case((m.Feedback.label == "less", 1), else_=0))
    return more, less


def noise_by_rule(s: Session) -> list[NoiseRow]:
    """Feedback counts per rule, per topic, and for recommendations; noisiest first."""
    more, less = _counts()
    rows: list[NoiseRow] = []
    q_rule = (
        select(m.Rule.id, m.Rule.name, m.Rule.query, more, less)
        .join(m.Feedback, m.Feedback.rule_id == m.Rule.id)
        .group_by(m.Rule.id, m.Rule.name, m.Rule.query)
    )
    for rid, name, query, mo, le in s.execute(q_rule):
        rows.append(NoiseRow("rule", rid, name or query, int(mo or 0), int(le or 0)))
    q_topic = (
        select(m.Topic.id, m.Topic.name, more, less)
        .join(m.Feedback, m.Feedback.topic_id == m.Topic.id)
        .group_by(m.Topic.id, m.Topic.name)
    )
    for tid, name, mo, le in s.execute(q_topic):
        rows.append(NoiseRow("topic", tid, name, int(mo or 0), int(le or 0)))
    q_rec = select(more, less).where(m.Feedback.recommended.is_(True))
    mo, le = s.execute(q_rec).one()
    if mo or le:
        rows.append(NoiseRow("recommendation", None, "You might also like", int(mo), int(le)))
    return sorted(rows, key=lambda r: (-(r.noise or 0), -(r.more + r.less), r.kind, r.name))


@dataclass(frozen=True)
class Precision:
    """Recommendations shown, how many got a later verdict, and the share of "more"."""

    shown: int
    judged: int
    liked: int

    @property
    def precision(self) -> float | None:
        return None if self.judged == 0 else self.liked / self.judged


def recommendation_precision(s: Session) -> Precision:
    """Precision of recommendations measured by the feedback given on them after they were
    shown: liked / judged ("more" / ("more" + "not relevant"))."""
    shown = int(s.scalar(select(func.count()).select_from(m.Recommendation)) or 0)
    more, less = _counts()
    q = select(more, less).join(
        m.Recommendation,
        (m.Recommendation.subscriber_id == m.Feedback.subscriber_id)
        & (m.Recommendation.paper_id == m.Feedback.paper_id),
    ).where(m.Feedback.updated_at >= m.Recommendation.created_at)
    mo, le = s.execute(q).one()
    return Precision(shown, int(mo or 0) + int(le or 0), int(mo or 0))

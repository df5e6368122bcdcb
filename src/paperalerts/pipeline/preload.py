"""What a batch of sends reads once for all its deliveries instead of once each.

A send batch (`send_batch`) claims a few deliveries at a time; before rendering them it reads,
in a handful of queries for the lot: their match rows, the papers those name (with the sources
that listed them), the sources' status, and per subscriber the muted authors and the count of
"more like this" feedback. Rendering one delivery then needs no query of its own for these,
which is most of what a digest send used to spend in the database.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from paperalerts.core.digest import SourceStatus
from paperalerts.core.papers import Paper
from paperalerts.core.source_names import display_name
from paperalerts.edges.db import models as m
from paperalerts.edges.db import repo


@dataclass(frozen=True)
class Preloaded:
    """The shared reads of one batch; a delivery or subscriber missing from a map has none."""

    sources: list[SourceStatus]
    rows: dict[int, list[m.Match]] = field(default_factory=dict)  # by delivery id
    papers: dict[str, Paper] = field(default_factory=dict)
    muted: dict[int, set[str]] = field(default_factory=dict)  # by subscriber id
    positives: dict[int, int] = field(default_factory=dict)  # by subscriber id
    owner: dict[int, tuple[int, str]] = field(default_factory=dict)  # delivery -> (sub, kind)


def source_statuses(s: Session) -> list[SourceStatus]:
    """The enabled sources' status, by name (the freshness line of every digest)."""
    return [
        SourceStatus(
            name=src.name,
            kind=src.kind,
            health=src.health,  # type: ignore[arg-type]
            last_success_at=src.last_success_at,
            failing_since=src.failing_since,
            new_count=src.last_new_count,
            quiet_day=src.quiet_day,
            display_name=display_name(src.kind, src.url, src.display_name),
        )
        for src in s.scalars(
            select(m.Source).where(m.Source.enabled.is_(True)).order_by(m.Source.name)
        )
    ]


def preload(s: Session, delivery_ids: Sequence[int]) -> Preloaded:
    """The shared reads for `delivery_ids`, in a fixed number of queries."""
    ids = list(delivery_ids)
    owner = {
        did: (sid, kind)
        for did, sid, kind in s.execute(
            select(m.Delivery.id, m.Delivery.subscriber_id, m.Delivery.kind).where(
                m.Delivery.id.in_(ids)
            )
        )
    }
    subs = sorted({sid for sid, _ in owner.values()})
    rows: dict[int, list[m.Match]] = defaultdict(list)
    if owner:
        q = (
            select(m.Match)  # by (subscriber, delivery): the index, not a scan of every match
            .where(m.Match.subscriber_id.in_(subs), m.Match.delivery_id.in_(list(owner)))
            .order_by(m.Match.id)
        )
        for row in s.scalars(q):
            if row.delivery_id is not None:
                rows[row.delivery_id].append(row)
    papers = repo.paper_values(s, {r.paper_id for rs in rows.values() for r in rs})
    muted: dict[int, set[str]] = defaultdict(set)
    for sid, key, hf in s.execute(
        select(m.AuthorPref.subscriber_id, m.AuthorPref.author_key, m.AuthorPref.hf_id).where(
            m.AuthorPref.subscriber_id.in_(subs), m.AuthorPref.action == "mute"
        )
    ):
        muted[sid].add(key)
        if hf:
            muted[sid].add(hf)
    positives = {
        sid: int(n)
        for sid, n in s.execute(
            select(m.Feedback.subscriber_id, func.count())
            .where(m.Feedback.subscriber_id.in_(subs), m.Feedback.label == "more")
            .group_by(m.Feedback.subscriber_id)
        )
    }
    return Preloaded(source_statuses(s), dict(rows), papers, dict(muted), positives, owner)

"""The delivery pipeline's feedback hooks (issue 13).

* `train_recommendations(factory, cfg, now=...)` — the bulk step, after matching (the match
  task, the cycle): for every subscriber with enough "more like this", train their model on the
  papers they have seen and store the best new papers no rule matched as pending
  `Recommendation` rows (a paper is recommended to a subscriber at most once, ever). Many
  subscribers share one vocabulary and one training (`core.recommend.recommend_many`).
* `attach_recommendations(factory, sub_id, delivery_id)` — as a digest is sent: it takes the
  pending rows (one UPDATE); nothing is trained on the send path.
* `with_feedback(s, sub, items, ...)` — while rendering: drop papers by muted authors, add the
  one-click feedback links, and the stored recommendations of the delivery.

A failing recommender never stops a digest: the hooks log and the digest goes out without them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.core.digest import Digest, MatchedItem, Recommended, paper_item
from paperalerts.core.feedback import feedback_links, muted_author
from paperalerts.core.recommend import Job, recommend_many
from paperalerts.edges.db import feedback_repo as fr
from paperalerts.edges.db import models as m
from paperalerts.edges.db import recommend_repo as rr
from paperalerts.edges.db import repo
from paperalerts.edges.db.engine import transaction

log = logging.getLogger(__name__)
# With no digest sent before, candidates are the papers first seen in this window.
FIRST_WINDOW = timedelta(days=7)
CHUNK = 250  # subscribers per vocabulary, training and transaction (memory grows with it)


@dataclass(frozen=True)
class RecommendConfig:
    """The settings the hooks use (values; the delivery config carries them)."""

    base_url: str
    secret: str
    min_positives: int = 3
    max_items: int = 5


@dataclass(frozen=True)
class TrainOutcome:
    """What one bulk step did: subscribers considered, those who got recommendations, how many
    rows it stored, and its seconds of wall time."""

    engaged: int = 0
    recommended: int = 0
    rows: int = 0
    seconds: float = 0.0


def train_recommendations(
    factory: sessionmaker[Session],
    cfg: RecommendConfig,
    *,
    now: datetime,
    chunk: int = CHUNK,
) -> TrainOutcome:
    """Train every engaged subscriber's model (enough "more like this") and store their best
    new papers no rule matched as pending recommendations, replacing the pending ones of an
    earlier run; `chunk` subscribers share one vocabulary, one training and one transaction,
    so memory stays flat however many there are (peak RSS grows with the chunk: 600 engaged
    subscribers in one chunk added 261 MB, in chunks of 250 113 MB). Runs after matching,
    before dispatch: a send only attaches what is stored (`attach_recommendations`)."""
    started = time.perf_counter()
    if cfg.max_items <= 0:
        return TrainOutcome()
    with factory() as s:
        subs = rr.engaged(s, cfg.min_positives)
    rows = recommended = 0
    for lo in range(0, len(subs), max(chunk, 1)):
        part = subs[lo : lo + max(chunk, 1)]
        try:
            made = _train_chunk(factory, part, cfg, now)
        except IntegrityError:  # a concurrent run stored these first: theirs stand
            log.warning("recommendations for %d subscribers stored by another run", len(part))
            continue
        rows += made[0]
        recommended += made[1]
    took = time.perf_counter() - started
    log.info("recommendations: %d engaged subscribers, %d recommended (%d papers) in %.1fs",
             len(subs), recommended, rows, took)
    return TrainOutcome(len(subs), recommended, rows, took)


def _train_chunk(
    factory: sessionmaker[Session], subs: list[int], cfg: RecommendConfig, now: datetime
) -> tuple[int, int]:
    with transaction(factory) as s:
        rr.drop_pending(s, subs)
        last = rr.last_digest(s, subs)
        since = {sid: last.get(sid) or now - FIRST_WINDOW for sid in subs}
        pool = rr.recent(s, min(since.values()))
        seen = rr.seen(s, subs)
        blocked = rr.excluded(s, subs, [pid for pid, _ in pool])
        muted = rr.muted(s, subs)
        wanted = {pid for labels in seen.values() for pid, _ in labels} | {p for p, _ in pool}
        papers = repo.paper_values(s, list(wanted))
        jobs = [
            Job(sid, seen.get(sid, []), [
                pid for pid, at in pool
                if at > since[sid] and pid not in blocked.get(sid, ()) and pid in papers
                and not (sid in muted and muted_author(papers[pid], muted[sid]))
            ])
            for sid in subs
        ]  # fmt: skip
        # (trained inside the transaction: the chunk's pending rows are replaced atomically)
        recs = recommend_many(jobs, papers, min_positives=cfg.min_positives, limit=cfg.max_items)
        rows = [
            {"subscriber_id": sid, "paper_id": r.paper_id, "delivery_id": None,
             "score": r.score, "terms": list(r.terms), "created_at": now}
            for sid, rs in recs.items() for r in rs
        ]  # fmt: skip
        rr.store_pending(s, rows)
    return len(rows), len(recs)


def attach_recommendations(
    factory: sessionmaker[Session], delivery_id: int, sub_id: int | None = None
) -> int:
    """Give a digest delivery its subscriber's (`sub_id`, when the caller knows it) stored
    recommendations; how many it has. Never raises: the digest matters more than its
    suggestions."""
    try:
        with transaction(factory) as s:
            if sub_id is None:
                d = s.get(m.Delivery, delivery_id)
                if d is None or d.kind != "digest":
                    return 0
                sub_id = d.subscriber_id
            return rr.attach(s, sub_id, delivery_id)
    except Exception:
        log.exception("recommendations for delivery %s not attached; sending without", delivery_id)
        return 0


def without_muted(
    s: Session, sub_id: int, items: Sequence[MatchedItem], muted: set[str] | None = None
) -> list[MatchedItem]:
    """`items` without the papers of authors the subscriber muted (`muted`: their keys, when
    the caller read them already)."""
    muted = fr.muted_keys(s, sub_id) if muted is None else muted
    return [i for i in items if not muted_author(i.paper, muted)] if muted else list(items)


def decorate(
    s: Session, sub: m.Subscriber, digest: Digest, cfg: RecommendConfig,
    *, delivery_id: int | None, now: datetime, muted: set[str] | None = None,
) -> Digest:
    """The digest with its stored recommendations and every paper's feedback links. A digest
    with no delivery (a preview) gets neither: its links would name no email."""
    if delivery_id is None:
        return digest
    recs: list[Recommended] = []
    rows = fr.delivery_recommendations(s, delivery_id)
    papers = repo.paper_values(s, [r.paper_id for r in rows]) if rows else {}
    mutes = (fr.muted_keys(s, sub.id) if muted is None else muted) if rows else set()
    shown = {i.paper_id for g in digest.groups for i in g.items}
    for r in rows:
        p = papers.get(r.paper_id)
        # (a paper a rule matched since the training is in the digest already)
        if p is not None and p.id not in shown and not muted_author(p, mutes):
            recs.append(Recommended(paper_item(p), tuple(r.terms), r.score))
    ids = [i.paper_id for g in digest.groups for i in g.items] + [r.item.paper_id for r in recs]
    links = feedback_links(cfg.base_url, cfg.secret, sub.id, sub.token_version, ids,
                           f"d{delivery_id}", now=now)
    return replace(digest, feedback=links, recommendations=tuple(recs))

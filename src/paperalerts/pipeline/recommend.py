"""The delivery pipeline's feedback hooks (issue 13).

* `prepare_recommendations(factory, delivery_id, ...)` — before a digest is rendered for sending:
  once the subscriber has given enough "more like this", train their model on the papers they
  have seen and store the best new papers no rule matched as `Recommendation` rows of that
  delivery (once per delivery; a paper is recommended to a subscriber at most once, ever).
* `with_feedback(s, sub, items, ...)` — while rendering: drop papers by muted authors, add the
  one-click feedback links, and the stored recommendations of the delivery.

A failing recommender never stops a digest: the hook logs and the digest goes out without them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.core.digest import Digest, MatchedItem, Recommended, paper_item
from paperalerts.core.feedback import feedback_links, muted_author
from paperalerts.core.recommend import recommend
from paperalerts.edges.db import feedback_repo as fr
from paperalerts.edges.db import models as m
from paperalerts.edges.db import repo
from paperalerts.edges.db.engine import transaction

log = logging.getLogger(__name__)
# With no digest sent before, candidates are the papers first seen in this window.
FIRST_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class RecommendConfig:
    """The settings the hooks use (values; the delivery config carries them)."""

    base_url: str
    secret: str
    min_positives: int = 3
    max_items: int = 5


def prepare_recommendations(
    factory: sessionmaker[Session], delivery_id: int, cfg: RecommendConfig, *, now: datetime
) -> int:
    """Store the recommendations of a digest delivery; returns how many it has. Idempotent."""
    try:
        return _prepare(factory, delivery_id, cfg, now)
    except Exception:  # the digest matters more than its suggestions
        log.exception("recommendations for delivery %s failed; sending without", delivery_id)
        return 0


def _prepare(factory: sessionmaker[Session], delivery_id: int, cfg: RecommendConfig,
             now: datetime) -> int:
    with factory() as s:
        d = s.get(m.Delivery, delivery_id)
        if d is None or d.kind != "digest" or cfg.max_items <= 0:
            return 0
        if stored := fr.delivery_recommendations(s, delivery_id):
            return len(stored)
        sub_id = d.subscriber_id
        if fr.positives(s, sub_id) < max(cfg.min_positives, 1):
            return 0
        since = fr.last_digest_at(s, sub_id, delivery_id) or now - FIRST_WINDOW
        muted = fr.muted_keys(s, sub_id)
        seen = fr.training_set(s, sub_id)
        pool = [p for p in fr.candidates(s, sub_id, since) if not muted_author(p, muted)]
    # Trained outside any session: no database lock is held while the model fits.
    recs = recommend(seen, pool, min_positives=cfg.min_positives, limit=cfg.max_items)
    with transaction(factory) as s:
        for r in recs:
            try:
                with s.begin_nested():
                    s.add(m.Recommendation(subscriber_id=sub_id, paper_id=r.paper_id,
                                           delivery_id=delivery_id, score=r.score,
                                           terms=list(r.terms), created_at=now))
                    s.flush()
            except IntegrityError:  # recommended meanwhile by a concurrent send: keep that one
                continue
    return len(recs)


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
    for r in rows:
        p = papers.get(r.paper_id)
        if p is not None and not muted_author(p, mutes):
            recs.append(Recommended(paper_item(p), tuple(r.terms), r.score))
    ids = [i.paper_id for g in digest.groups for i in g.items] + [r.item.paper_id for r in recs]
    links = feedback_links(cfg.base_url, cfg.secret, sub.id, sub.token_version, ids,
                           f"d{delivery_id}", now=now)
    return replace(digest, feedback=links, recommendations=tuple(recs))

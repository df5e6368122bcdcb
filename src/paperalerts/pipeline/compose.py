"""Compose a delivery's email: its match rows -> a digest -> rendered subject, text and HTML.

Shared by every send (single or batch), the online view and previews, so they all show the same:
readable rule labels, only the sources that listed the papers, muted authors left out, and each
paper's feedback links with the delivery's recommendations. `DeliveryConfig` carries the values
the delivery steps take (the faces build it from the settings).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from paperalerts.core.digest import MatchedItem, SubscriberInfo, build_digest
from paperalerts.core.render import Footer, Rendered, render_digest
from paperalerts.core.rules.label import display_name
from paperalerts.core.schedule import Frequency
from paperalerts.core.subscribers import subscriber_links
from paperalerts.edges.db import models as m
from paperalerts.edges.db import repo
from paperalerts.pipeline.preload import Preloaded, source_statuses
from paperalerts.pipeline.recommend import RecommendConfig, decorate, without_muted

# Topics share the digest's rule-group numbering with personal rules; keep them apart.
TOPIC_GROUP_OFFSET = 1_000_000_000


@dataclass(frozen=True)
class DeliveryConfig:
    """The settings the delivery steps use (values, so the steps never read the environment)."""

    base_url: str
    secret: str
    mail_from: str
    mail_domain: str
    postal_address: str = ""
    max_items: int = 50
    send_empty: bool = False
    bounce_threshold: int = 3
    max_attempts: int = 100
    lease: timedelta = timedelta(minutes=2)
    # The longest one SMTP exchange can take (timeout x steps); a send starts only with at least
    # this much (and half a lease) left on its lease, else the heartbeat extends it first.
    exchange: timedelta = timedelta(0)
    backoff_base: timedelta = timedelta(minutes=1)
    backoff_max: timedelta = timedelta(minutes=30)
    retry_window: timedelta = timedelta(hours=36)
    match_wait: timedelta = timedelta(hours=1)
    breaker_failures: int = 10
    breaker_pause_max: timedelta = timedelta(minutes=5)
    stale_after: timedelta = timedelta(minutes=1)
    recommend_min_positives: int = 3
    recommend_max_items: int = 5
    bounce_address: str = ""  # base of the signed envelope senders; "" = bounces@mail_domain

    def recommend(self) -> RecommendConfig:
        return RecommendConfig(self.base_url, self.secret, self.recommend_min_positives,
                               self.recommend_max_items)


def render_delivery(
    s: Session,
    d: m.Delivery,
    sub: m.Subscriber,
    cfg: DeliveryConfig,
    now: datetime,
    preloaded: Preloaded | None = None,
) -> Rendered:
    """The rendered digest or alert of a delivery: its attached matches, today's freshness
    (read from `preloaded` when a send batch read them for all its deliveries at once)."""
    if preloaded is not None:
        rows = preloaded.rows.get(d.id, [])
    else:
        rows = list(
            s.scalars(
                select(m.Match)  # by (subscriber, delivery): the index, not a scan of every match
                .where(m.Match.subscriber_id == d.subscriber_id, m.Match.delivery_id == d.id)
                .order_by(m.Match.id)
            )
        )
    return render_matches(
        s, sub, rows, cfg, now, online_url=f"{cfg.base_url.rstrip('/')}/d/{d.view_key}",
        delivery_id=d.id, preloaded=preloaded,
    )


def render_matches(
    s: Session,
    sub: m.Subscriber,
    rows: list[m.Match],
    cfg: DeliveryConfig,
    now: datetime,
    *,
    online_url: str,
    preview: bool = False,
    delivery_id: int | None = None,
    preloaded: Preloaded | None = None,
) -> Rendered:
    """Render the digest a subscriber would get for these match rows (also for previews, which
    say so: `preview`). The footer's freshness line names only the sources that listed this
    digest's papers. With a `delivery_id`, each paper gets its feedback links and the delivery
    its recommendations."""
    if preloaded is not None:
        papers = preloaded.papers
        sources, muted = preloaded.sources, preloaded.muted.get(sub.id, set())
    else:
        papers = repo.paper_values(s, {r.paper_id for r in rows})
        sources, muted = source_statuses(s), None
    items: list[MatchedItem] = []
    for r in rows:
        if r.paper_id not in papers:
            continue
        for e in r.explanation.get("rules", []):
            gid = (
                e["rule_id"]
                if e.get("rule_id") is not None
                else TOPIC_GROUP_OFFSET + int(e["topic_id"])
            )
            items.append(
                MatchedItem(
                    paper=papers[r.paper_id],
                    rule_id=gid,
                    rule_name=display_name(e.get("name"), e.get("query", "")),
                    explanation=e,
                    matched_at=r.matched_at,
                )
            )
    info = SubscriberInfo(
        email=sub.email,
        name=sub.name,
        frequency=cast(Frequency, sub.frequency),  # validated when stored
        timezone=sub.timezone,
    )
    fed = {name for i in items for name in i.paper.extra.get("sources") or ()}
    digest = build_digest(
        info, without_muted(s, sub.id, items, muted), [st for st in sources if st.name in fed],
        now=now, online_url=online_url, max_items=cfg.max_items,
    )  # fmt: skip
    digest = decorate(
        s, sub, digest, cfg.recommend(), delivery_id=delivery_id, now=now, muted=muted
    )
    links = subscriber_links(cfg.base_url, cfg.secret, sub.id, sub.token_version, now=now)
    footer = Footer(
        reason=f"{sub.email} subscribed to paperalerts, and these papers matched your rules.",
        postal_address=cfg.postal_address,
        manage_url=links.manage,
        unsubscribe_url=links.unsubscribe,
    )
    return render_digest(digest, footer, preview=preview)

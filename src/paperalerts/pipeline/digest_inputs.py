"""What rendering a batch of deliveries needs, loaded in bulk (a fixed handful of queries per
batch instead of a dozen per delivery): the deliveries with their subscribers, their attached
matches, the papers of those matches and the sources' freshness, as values.

Matches are looked up by (subscriber, delivery), the columns of ``ix_match_undelivered``, so a
batch costs index lookups and never a scan of the match table.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from paperalerts.core.digest import MatchedItem, SourceStatus, SubscriberInfo, build_digest
from paperalerts.core.papers import Paper
from paperalerts.core.render import Footer, Rendered, render_digest
from paperalerts.core.schedule import Frequency
from paperalerts.core.subscribers import subscriber_links
from paperalerts.edges.db import models as m
from paperalerts.edges.db import repo

# Topics share the digest's rule-group numbering with personal rules; keep them apart.
TOPIC_GROUP_OFFSET = 1_000_000_000


class RenderConfig(Protocol):
    """The settings rendering uses (`DeliveryConfig` has them)."""

    @property
    def base_url(self) -> str: ...
    @property
    def secret(self) -> str: ...
    @property
    def postal_address(self) -> str: ...
    @property
    def max_items(self) -> int: ...


class SubscriberLike(Protocol):
    """What rendering and addressing need of a subscriber (a row or a `Recipient`)."""

    @property
    def id(self) -> int: ...
    @property
    def email(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def frequency(self) -> str: ...
    @property
    def timezone(self) -> str: ...
    @property
    def token_version(self) -> int: ...


class MatchLike(Protocol):
    """What a digest needs of a match (a row or a `MatchRow`)."""

    @property
    def paper_id(self) -> str: ...
    @property
    def explanation(self) -> dict[str, Any]: ...
    @property
    def matched_at(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class Recipient:
    id: int
    email: str
    name: str
    status: str
    frequency: str
    timezone: str
    token_version: int


@dataclass(frozen=True, slots=True)
class MatchRow:
    paper_id: str
    explanation: dict[str, Any]
    matched_at: datetime


@dataclass(frozen=True, slots=True)
class LoadedDelivery:
    id: int
    view_key: str | None
    attempts: int
    recipient: Recipient
    rows: list[MatchRow] = field(default_factory=list)


@dataclass(frozen=True)
class Batch:
    """Loaded deliveries by id (ids that do not exist are absent), the papers of their matches
    by id, and the enabled sources' status (one read serves the whole batch)."""

    deliveries: dict[int, LoadedDelivery]
    papers: dict[str, Paper]
    sources: list[SourceStatus]


def source_statuses(s: Session) -> list[SourceStatus]:
    """Today's freshness of every enabled source, for the digest's header."""
    return [
        SourceStatus(
            name=src.name,
            kind=src.kind,
            health=src.health,  # type: ignore[arg-type]
            last_success_at=src.last_success_at,
            failing_since=src.failing_since,
            new_count=src.last_new_count,
            quiet_day=src.quiet_day,
        )
        for src in s.scalars(
            select(m.Source).where(m.Source.enabled.is_(True)).order_by(m.Source.name)
        )
    ]


def load_batch(s: Session, ids: Collection[int], chunk: int = 500) -> Batch:
    """The deliveries `ids` with everything their emails need (ids chunked: SQLite caps bound
    parameters per statement). Matches come in id order, as `render_delivery` reads them."""
    id_list = sorted(set(ids))
    loaded: dict[int, LoadedDelivery] = {}
    rows: dict[int, list[MatchRow]] = defaultdict(list)
    for i in range(0, len(id_list), chunk):
        part = id_list[i : i + chunk]
        q = (
            select(
                m.Delivery.id,
                m.Delivery.view_key,
                m.Delivery.attempts,
                m.Subscriber.id,
                m.Subscriber.email,
                m.Subscriber.name,
                m.Subscriber.status,
                m.Subscriber.frequency,
                m.Subscriber.timezone,
                m.Subscriber.token_version,
            )
            .join(m.Subscriber, m.Subscriber.id == m.Delivery.subscriber_id)
            .where(m.Delivery.id.in_(part))
        )
        subs: set[int] = set()
        for did, view_key, attempts, *sub in s.execute(q):
            recipient = Recipient(*sub)
            subs.add(recipient.id)
            loaded[did] = LoadedDelivery(did, view_key, attempts, recipient, rows[did])
        mq = (
            select(m.Match.delivery_id, m.Match.paper_id, m.Match.explanation, m.Match.matched_at)
            .where(m.Match.subscriber_id.in_(subs), m.Match.delivery_id.in_(part))
            .order_by(m.Match.id)
        )
        for did, paper_id, explanation, matched_at in s.execute(mq):
            rows[did].append(MatchRow(paper_id, explanation, matched_at))
    paper_ids = {r.paper_id for d in loaded.values() for r in d.rows}
    papers = repo.paper_values(s, paper_ids) if paper_ids else {}
    return Batch(loaded, papers, source_statuses(s))


def digest_items(rows: Iterable[MatchLike], papers: dict[str, Paper]) -> list[MatchedItem]:
    """One item per (match, rule that matched); a paper deleted since is left out."""
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
                    rule_name=e.get("name") or e.get("query", ""),
                    explanation=e,
                    matched_at=r.matched_at,
                )
            )
    return items


def render_loaded(
    sub: SubscriberLike,
    rows: Sequence[MatchLike],
    papers: dict[str, Paper],
    sources: list[SourceStatus],
    cfg: RenderConfig,
    now: datetime,
    *,
    online_url: str,
) -> Rendered:
    """Render a digest from values already loaded (no database): the one rendering path of
    single sends, batch sends, previews and the online view."""
    info = SubscriberInfo(
        email=sub.email,
        name=sub.name,
        frequency=cast(Frequency, sub.frequency),  # validated when stored
        timezone=sub.timezone,
    )
    digest = build_digest(
        info,
        digest_items(rows, papers),
        sources,
        now=now,
        online_url=online_url,
        max_items=cfg.max_items,
    )
    links = subscriber_links(cfg.base_url, cfg.secret, sub.id, sub.token_version)
    footer = Footer(
        reason=f"{sub.email} subscribed to paperalerts, and these papers matched your rules.",
        postal_address=cfg.postal_address,
        manage_url=links.manage,
        unsubscribe_url=links.unsubscribe,
    )
    return render_digest(digest, footer)

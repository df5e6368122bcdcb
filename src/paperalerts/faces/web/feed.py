"""A subscriber's matches as an Atom feed (feedgen), served at their signed feed URL."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Final

from feedgen.feed import FeedGenerator  # type: ignore[import-untyped]
from sqlalchemy import select
from sqlalchemy.orm import Session

from paperalerts.core.digest import clip
from paperalerts.core.paper_links import paper_links
from paperalerts.core.rules.label import display_name, why_terms
from paperalerts.edges.db import models as m
from paperalerts.edges.db import repo

FEED_ITEMS: Final = 100
# XML 1.0 forbids these; scraped text may carry them.
_NOT_XML: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _x(text: str) -> str:
    return _NOT_XML.sub("", text)


def _why(explanation: dict[str, object]) -> str:
    rules = explanation.get("rules")
    if not isinstance(rules, list):
        return ""
    parts = []
    for r in rules:
        if isinstance(r, dict):  # worded as in the emails: "upvotes ≥ 30", never "upvotes:>=30"
            name = display_name(str(r.get("name") or ""), str(r.get("query") or ""))
            terms = ", ".join(why_terms(name, [str(t) for t in r.get("terms") or []]))
            parts.append(name + (f" ({terms})" if terms else ""))
    return "; ".join(parts)


def _aware(when: datetime) -> datetime:
    """feedgen refuses naive datetimes; a naive one read back from the database is UTC."""
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def atom_feed(s: Session, sub: m.Subscriber, feed_url: str, site_url: str, now: datetime) -> bytes:
    """The newest `FEED_ITEMS` matches of `sub`, newest first: title, link, authors, abstract,
    and why each matched. Every string is XML-escaped by the serializer.

    A paper's link is the one the emails use (its page, else arXiv), only ever http(s). Atom
    requires an entry without an alternate link to carry content, so a paper with no web link
    at all gets its text as the entry's content instead of a summary: it is listed, not a 500."""
    matches = list(s.scalars(
        select(m.Match).where(m.Match.subscriber_id == sub.id)
        .order_by(m.Match.matched_at.desc(), m.Match.id.desc()).limit(FEED_ITEMS)
    ))
    papers = repo.paper_values(s, {x.paper_id for x in matches})
    fg = FeedGenerator()
    fg.id(feed_url)
    fg.title("Paper alerts: papers matching your rules")
    fg.subtitle(_x(f"Papers matched for {sub.email}"))
    fg.link(href=feed_url, rel="self")
    fg.link(href=site_url, rel="alternate")
    fg.updated(matches[0].matched_at if matches else now)
    fg.generator("paperalerts")
    for x in matches:
        p = papers.get(x.paper_id)
        if p is None:
            continue
        fe = fg.add_entry(order="append")
        fe.id(uuid.uuid5(uuid.NAMESPACE_URL, f"{site_url}/match/{x.id}").urn)
        fe.title(_x(clip(p.title, 300)) or p.id)
        link, _ = paper_links(p)
        for name in p.authors[:10]:
            if name := _x(name).strip():
                fe.author(name=name)
        why = _why(x.explanation or {})
        summary = _x((f"Matched: {why}\n\n" if why else "") + clip(p.abstract, 2000))
        if link:
            fe.link(href=link)
            fe.summary(summary)
        else:
            fe.content(summary or p.id, type="text")
        fe.updated(_aware(x.matched_at))
        if p.published is not None:
            fe.published(_aware(p.published))
    out = fg.atom_str(pretty=True)
    assert isinstance(out, bytes)
    return out

"""A subscriber's matches as an Atom feed (feedgen), served at their signed feed URL."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Final

from feedgen.feed import FeedGenerator  # type: ignore[import-untyped]
from sqlalchemy import select
from sqlalchemy.orm import Session

from paperalerts.core.digest import clip
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


def atom_feed(s: Session, sub: m.Subscriber, feed_url: str, site_url: str, now: datetime) -> bytes:
    """The newest `FEED_ITEMS` matches of `sub`, newest first: title, link, authors, abstract,
    and why each matched. Every string is XML-escaped by the serializer."""
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
        fe.title(_x(clip(p.title, 300)))
        if p.url.startswith(("http://", "https://")):
            fe.link(href=_x(p.url))
        for name in p.authors[:10]:
            fe.author(name=_x(name))
        why = _why(x.explanation or {})
        summary = (f"Matched: {why}\n\n" if why else "") + clip(p.abstract, 2000)
        fe.summary(_x(summary))
        fe.updated(x.matched_at)
        if p.published is not None:
            fe.published(p.published)
    out = fg.atom_str(pretty=True)
    assert isinstance(out, bytes)
    return out

"""Hugging Face Daily Papers items -> `Paper`.

The ``/api/daily_papers`` JSON and the ``data-props`` of a ``/papers`` page's ``DailyPapers``
component carry the same item shape, in two generations (2024: no submittedOnDailyAt, ai_*
or organization; 2026: all of them, some optional)::

    {"paper": {"id", "authors": [{"name", ...}], "publishedAt", "submittedOnDailyAt"?, "title",
               "summary", "upvotes", "githubRepo"?, "githubStars"?, "projectPage"?,
               "ai_summary"?, "ai_keywords"?, "organization"?},
     "publishedAt", "title", "summary"?, "numComments", "organization"?, ...}
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from paperalerts.core.papers import Paper, canonical_id, normalize_arxiv_id
from paperalerts.core.sources._text import (
    as_dict,
    as_int,
    as_list,
    as_str,
    clean,
    parse_date,
    text_maybe_html,
)
from paperalerts.errors import ParseError

HF_PAPER_URL = "https://huggingface.co/papers/{}"
ARXIV_PDF_URL = "https://arxiv.org/pdf/{}"


def author_name(raw: object) -> str:
    """An author's display name. HF stores some names HTML-escaped already (``D&#39;Mello``), so
    after the attribute/JSON decoding one more unescape is needed for display."""
    name = clean(raw)
    return clean(html.unescape(name)) if "&" in name else name


def _authors(raw: object) -> tuple[tuple[str, ...], list[str | None]]:
    """The author names and, aligned with them, ``hf:<user>`` for authors who claimed their HF
    profile (``user.user``), else None: the stable part of an author's identity."""
    names: list[str] = []
    ids: list[str | None] = []
    for a in as_list(raw):
        d = as_dict(a)
        if name := author_name(d.get("name")):
            names.append(name)
            user = as_str(as_dict(d.get("user")).get("user"))
            ids.append(f"hf:{user}" if user else None)
    return tuple(names), ids


def organization_name(org: object) -> str | None:
    """``organization.fullname``, else its ``name``."""
    d = as_dict(org)
    return clean(d.get("fullname")) or clean(d.get("name")) or None


def paper_from_item(
    item: object, *, source: str, index: int, url: str, page_extra: Mapping[str, Any] | None = None
) -> Paper:
    """One daily-papers item (at `index`, 0-based, on its page) -> Paper; `page_extra` is added to
    its ``extra``. Raises ParseError naming the item when it has no paper id or title."""
    top = as_dict(item)
    paper = as_dict(top.get("paper"))
    raw_id = as_str(paper.get("id")) or as_str(top.get("id"))
    if raw_id is None:
        raise ParseError(f"item {index}: no paper.id", url=url, kind=source)
    pid = canonical_id(source, raw_id)
    arxiv_id = normalize_arxiv_id(raw_id)

    # The top-level title is HF's cleaned one-line title; paper.title keeps arXiv hard wraps.
    title = text_maybe_html(top.get("title")) or text_maybe_html(paper.get("title"))
    if not title:
        raise ParseError(f"item {index} ({raw_id}): no title", url=url, kind=source)
    abstract = text_maybe_html(paper.get("summary")) or text_maybe_html(top.get("summary"))
    authors, author_ids = _authors(paper.get("authors"))
    org = organization_name(paper.get("organization")) or organization_name(
        top.get("organization")
    )
    keywords = tuple(k for k in (clean(x) for x in as_list(paper.get("ai_keywords"))) if k)

    # Listing day: submittedOnDailyAt (2026 shape); in the 2024 shape the top-level publishedAt
    # is the time the paper was posted to Daily Papers.
    listed = parse_date(paper.get("submittedOnDailyAt")) or parse_date(top.get("publishedAt"))
    extra: dict[str, Any] = {"rank": index + 1, **(page_extra or {})}
    if listed is not None:
        extra["listing_date"] = listed.date().isoformat()
        extra["submitted_on_daily_at"] = listed.isoformat()
    for key, out in (("projectPage", "project_page"), ("ai_summary", "ai_summary")):
        if value := as_str(paper.get(key)):
            extra[out] = clean(value)
    if (stars := as_int(paper.get("githubStars"))) is not None:
        extra["github_stars"] = stars
    if any(author_ids):
        extra["author_ids"] = author_ids

    return Paper(
        id=pid,
        title=title,
        source=source,
        abstract=abstract,
        authors=authors,
        url=HF_PAPER_URL.format(raw_id),
        pdf_url=ARXIV_PDF_URL.format(arxiv_id) if arxiv_id else None,
        code_url=as_str(paper.get("githubRepo")),
        organization=org,
        published=parse_date(paper.get("publishedAt")),
        upvotes=as_int(paper.get("upvotes")),
        comments=as_int(top.get("numComments")),
        keywords=keywords,
        extra=extra,
    )

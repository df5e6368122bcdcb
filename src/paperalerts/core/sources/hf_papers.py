"""Hugging Face ``/papers`` HTML pages: daily, ``/papers/date/…``, week, month, trending, and the
single paper page ``/papers/<id>``.

Where the data is (as the pages served in 2025-2026 carry it):

* list pages: HTML-escaped JSON in the ``data-props`` attribute of the element with
  ``data-target="DailyPapers"`` (``{"dailyPapers": [item, …], "dateString", "periodType",
  "isTrending", …}``; items as in `paperalerts.core.sources._hf`);
* the single paper page: ``data-target="PaperContent"`` with ``{"paper": {…}, "comments": […],
  "submitterOrganization"?}`` — possibly single-quoted after a re-serialisation;
* otherwise the rendered cards: ``<article>`` elements linking to ``/papers/<id>``.

The page is parsed with lxml's HTML parser (libxml2, the tokenizer browsers' rules describe),
which also unescapes the attribute; about 20 ms for a 400 kB page, ample for hourly scrapes.
"""

from __future__ import annotations

import json
import re
from typing import Any

import lxml.etree
import lxml.html

from paperalerts.core.papers import Paper, canonical_id, normalize_arxiv_id
from paperalerts.core.sources._hf import ARXIV_PDF_URL, HF_PAPER_URL, paper_from_item
from paperalerts.core.sources._text import (
    as_dict,
    as_int,
    as_list,
    clean,
    element_text,
)
from paperalerts.errors import ParseError

KIND = "hf-papers"
_TARGETS = ("DailyPapers", "PaperContent")
_CARD_HREF_RE = re.compile(r"^/papers/([^/?#]+)$")
_ORG_HREF_RE = re.compile(r"/[A-Za-z0-9][\w.\-]*")
# HF serves UTF-8 whatever the page declares; libxml2 replaces undecodable bytes.
# huge_tree: a list page's data-props attribute can pass libxml2's default 10 MB text limit.
_HTML_PARSER = lxml.html.HTMLParser(encoding="utf-8", huge_tree=True)


def parse(body: bytes, url: str) -> list[Paper]:
    """Parse a Hugging Face papers page into Papers, in page order.

    A list page gives one Paper per ``dailyPapers`` item (an explicitly empty list gives []); a
    single paper page gives one Paper. Raises ParseError when the page has neither component
    props nor paper cards, or when the props are not the JSON the page promises."""
    try:
        doc = lxml.html.document_fromstring(body, parser=_HTML_PARSER)
    except (lxml.etree.LxmlError, ValueError) as e:
        raise ParseError(f"not an HTML page: {e}", url=url, kind=KIND) from None
    for target in _TARGETS:
        for el in doc.iterfind(f".//*[@data-target='{target}']"):
            raw = el.get("data-props")
            if raw is not None:
                return _papers_from_props(target, _decode_props(raw, target, url), url)
    papers = _papers_from_cards(doc, url)
    if not papers:
        raise ParseError(
            "no DailyPapers/PaperContent data-props and no paper cards (<article> with a "
            "/papers/<id> link) found: not a Hugging Face papers page",
            url=url, kind=KIND,
        )
    return papers


def _decode_props(raw: str, target: str, url: str) -> dict[str, Any]:
    """The (already unescaped) data-props attribute -> the props object."""
    try:
        props = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ParseError(
            f"{target} data-props is not valid JSON: {e.msg} at character {e.pos}",
            url=url, kind=KIND,
        ) from None
    except (ValueError, RecursionError) as e:
        raise ParseError(f"{target} data-props is not valid JSON: {e}", url=url,
                         kind=KIND) from None
    if not isinstance(props, dict):
        raise ParseError(f"{target} data-props is not a JSON object", url=url, kind=KIND)
    return props


def _papers_from_props(target: str, props: dict[str, Any], url: str) -> list[Paper]:
    if target == "PaperContent":
        paper = props.get("paper")
        if not isinstance(paper, dict):
            raise ParseError("PaperContent data-props has no paper object", url=url, kind=KIND)
        # The single page has no numComments: count the comments shown, not the hidden ones.
        comments = [c for c in as_list(props.get("comments"))
                    if not as_dict(as_dict(c).get("data")).get("hidden")]
        item = {
            "paper": paper,
            "numComments": len(comments),
            "organization": paper.get("organization") or props.get("submitterOrganization"),
        }
        return [paper_from_item(item, source=KIND, index=0, url=url)]

    items = props.get("dailyPapers")
    if not isinstance(items, list):
        raise ParseError("DailyPapers data-props has no dailyPapers list", url=url, kind=KIND)
    page_extra: dict[str, Any] = {}
    if isinstance(props.get("periodType"), str):
        page_extra["period_type"] = props["periodType"]
    if isinstance(props.get("isTrending"), bool):
        page_extra["trending"] = props["isTrending"]
    return [
        paper_from_item(item, source=KIND, index=i, url=url, page_extra=page_extra)
        for i, item in enumerate(items)
    ]


# --- no props: the rendered cards ---------------------------------------------------------


def _papers_from_cards(doc: lxml.html.HtmlElement, url: str) -> list[Paper]:
    """The visible cards: title link, upvote box (``-`` = 0), comment count, organisation."""
    papers: list[Paper] = []
    seen: set[str] = set()
    for rank, article in enumerate(doc.iter("article")):
        title_link = None
        for heading in article.iter("h1", "h2", "h3", "h4"):
            for a in heading.iter("a"):
                if _CARD_HREF_RE.match(a.get("href") or ""):
                    title_link = a
                    break
            if title_link is not None:
                break
        if title_link is None:
            continue
        m = _CARD_HREF_RE.match(title_link.get("href") or "")
        title = element_text(title_link)
        if m is None or not title:
            continue
        raw_id = m.group(1)
        pid = canonical_id(KIND, raw_id)
        if pid in seen:
            continue
        seen.add(pid)
        arxiv_id = normalize_arxiv_id(raw_id)
        papers.append(
            Paper(
                id=pid,
                title=title,
                source=KIND,
                url=HF_PAPER_URL.format(raw_id),
                pdf_url=ARXIV_PDF_URL.format(arxiv_id) if arxiv_id else None,
                organization=_card_organization(article),
                upvotes=_card_upvotes(article),
                comments=_card_comments(article, raw_id),
                extra={"rank": rank + 1, "from_cards": True},
            )
        )
    return papers


def _card_upvotes(article: lxml.html.HtmlElement) -> int | None:
    # The upvote box is the checkbox-role div; its count sits in a leaf div.
    for box in article.iterfind(".//*[@role='checkbox']"):
        for div in box.iter("div"):
            if len(div) == 0 and (n := as_int(clean(div.text))) is not None:
                return n
    return None


def _card_comments(article: lxml.html.HtmlElement, raw_id: str) -> int | None:
    for a in article.iter("a"):
        if (a.get("href") or "").endswith(f"/papers/{raw_id}#community"):
            return as_int(element_text(a)) or 0
    return None


def _card_organization(article: lxml.html.HtmlElement) -> str | None:
    # The organisation chip links to "/<org name>" (one path segment) and names it in a span.
    for a in article.iter("a"):
        href = a.get("href") or ""
        if _ORG_HREF_RE.fullmatch(href) and not href.startswith(("/papers", "/login")):
            for span in a.iter("span"):
                if text := clean(span.text_content()):
                    return text
    return None

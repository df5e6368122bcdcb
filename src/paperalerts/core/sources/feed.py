"""Any RSS or Atom feed, e.g. the third-party feeds that republish Hugging Face Daily Papers
(their authors, upvotes and abstract sit inside the entity-escaped HTML description).

An entry linking to an arXiv, Hugging Face papers or Takara paper URL gets the arXiv id as its
canonical id; otherwise its id is ``feed:<guid or link>``. Descriptions written as labelled parts
(``<b>Authors:</b> …``, ``<b>Upvotes:</b> …``, ``<b>Summary:</b> …``, as the huangboming feed
does) are read part by part: authors, upvotes and the abstract come from them.
"""

from __future__ import annotations

from typing import Any

import lxml.etree
import lxml.html

from paperalerts.core.papers import Paper, canonical_id
from paperalerts.core.sources._feeds import detail_text, entry_links, entry_published, read_feed
from paperalerts.core.sources._text import as_int, clean, element_text, html_to_text, split_authors
from paperalerts.errors import ParseError

KIND = "feed"
PDF_URL = "https://arxiv.org/pdf/{}"
_LABEL_TAGS = ("b", "strong")
_ABSTRACT_LABELS = ("summary", "abstract", "tldr", "tl;dr")


def parse(body: bytes, url: str) -> list[Paper]:
    """Parse an RSS/Atom feed into Papers, in feed order. An empty well-formed feed returns [].

    Raises ParseError when the body is not RSS or Atom, or an entry has neither guid nor link.
    Slightly malformed XML is accepted as far as feedparser's lenient parser recovers it."""
    parsed = read_feed(body, url, KIND, strict=False)
    return [_paper(entry, i, url) for i, entry in enumerate(parsed.get("entries") or [])]


def _paper(entry: Any, index: int, url: str) -> Paper:
    links = entry_links(entry)
    entry_id = clean(entry.get("id")) or clean(entry.get("link"))
    if not entry_id:
        raise ParseError(
            f"entry {index} ({clean(entry.get('title'))!r}): neither guid/id nor link",
            url=url, kind=KIND,
        )
    pid = canonical_id(KIND, entry_id, *links)
    is_arxiv = not pid.startswith(f"{KIND}:")

    description = _description_html(entry)
    parts = labelled_parts(description) if description else {}
    abstract = next((parts[k] for k in _ABSTRACT_LABELS if parts.get(k)), "")
    if not abstract:
        abstract = html_to_text(description) if description else detail_text(entry, "summary")

    if parts.get("authors"):
        authors = split_authors(parts["authors"])
    else:
        names = (clean(a.get("name")) for a in entry.get("authors") or [] if isinstance(a, dict))
        authors = tuple(n for n in names if n)

    extra: dict[str, Any] = {}
    categories = [clean(t.get("term")) for t in entry.get("tags") or [] if clean(t.get("term"))]
    if categories:
        extra["categories"] = categories
    if entry_id != pid:
        extra["entry_id"] = entry_id

    title = detail_text(entry, "title")
    if not title:
        raise ParseError(f"entry {index} ({entry_id}): no title", url=url, kind=KIND)
    return Paper(
        id=pid,
        title=title,
        source=KIND,
        abstract=abstract,
        authors=authors,
        url=clean(entry.get("link")) or next((u for u in links if u.startswith("http")), ""),
        pdf_url=PDF_URL.format(pid) if is_arxiv else None,
        published=entry_published(entry),
        upvotes=as_int(parts.get("upvotes")),
        extra=extra,
    )


def _description_html(entry: Any) -> str:
    """The entry's description/summary as HTML (plain text escaped is fine: it parses to itself);
    falls back to the first content block."""
    summary = entry.get("summary")
    if isinstance(summary, str) and summary.strip():
        return summary
    for content in entry.get("content") or []:
        value = content.get("value") if isinstance(content, dict) else None
        if isinstance(value, str) and value.strip():
            return value
    return ""


def labelled_parts(fragment: str) -> dict[str, str]:
    """``<b>Label:</b> value`` parts of an HTML fragment -> {"label": "value"} (labels lower-cased,
    values as plain text). A value runs to the next label or the end of its block."""
    if "<" not in fragment:
        return {}
    try:
        root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    except (lxml.etree.LxmlError, ValueError):
        return {}
    parts: dict[str, str] = {}
    for label_el in root.iter(*_LABEL_TAGS):
        label = clean(label_el.text_content())
        if not label.endswith(":") or len(label) > 40:
            continue
        pieces = [label_el.tail or ""]
        for sibling in label_el.itersiblings():
            if sibling.tag in _LABEL_TAGS and clean(sibling.text_content()).endswith(":"):
                break
            pieces.append(element_text(sibling) + " " + (sibling.tail or ""))
        parts.setdefault(label[:-1].strip().lower(), clean(" ".join(pieces)))
    return parts

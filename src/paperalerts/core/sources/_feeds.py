"""feedparser behind a pure, typed front: bytes in, parsed feed out, `ParseError` on anything that
is not an RSS or Atom feed."""

from __future__ import annotations

import io
import time
import xml.sax
from datetime import UTC, datetime
from typing import Any

import feedparser

from paperalerts.core.sources._caps import check_authors, check_markup
from paperalerts.core.sources._text import clean, html_to_text, parse_date
from paperalerts.errors import ParseError

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})

def read_feed(body: bytes, url: str, kind: str, *, strict: bool) -> Any:
    """Parse `body` with feedparser, never touching the network or the file system (the bytes go
    in as a stream; `url` only serves as the base for relative links).

    Raises ParseError when the body is not recognisably RSS or Atom, when it passes a size cap
    that keeps feedparser fast (`_caps`: author fields, tags per entry), or — when `strict` —
    when it is not well-formed XML (truncated, corrupted). A lenient parse keeps what feedparser's
    forgiving parser recovered, as feeds in the wild are often slightly malformed."""
    check_markup(body, url, kind)
    check_authors(body, url, kind)
    headers = {"content-type": "application/xml"}
    if url:
        headers["content-location"] = url
    try:
        parsed = feedparser.parse(io.BytesIO(body), response_headers=headers)
    except (ValueError, TypeError, LookupError, AttributeError, RecursionError) as e:
        # feedparser catches its parsers' errors itself; this is a net for pathological bytes.
        raise ParseError(f"unreadable feed: {type(e).__name__}: {e}", url=url, kind=kind) from None
    problem = _bozo_problem(parsed)
    if not parsed.get("version"):
        detail = f" ({problem})" if problem else ""
        raise ParseError(f"not an RSS or Atom feed{detail}", url=url, kind=kind)
    if strict and problem:
        raise ParseError(f"malformed feed: {problem}", url=url, kind=kind)
    return parsed


def _bozo_problem(parsed: Any) -> str | None:
    """What made feedparser set ``bozo``, unless it is one of its harmless notices."""
    if not parsed.get("bozo"):
        return None
    exc = parsed.get("bozo_exception")
    if isinstance(exc, feedparser.ThingsNobodyCaresAboutButMe):
        return None
    if isinstance(exc, xml.sax.SAXParseException):
        return f"line {exc.getLineNumber()} column {exc.getColumnNumber()}: {exc.getMessage()}"
    return str(exc) or type(exc).__name__


def detail_text(entry: Any, key: str) -> str:
    """An entry's text field (``title``, ``summary``) as plain text: HTML reduced when feedparser
    says the value is HTML, whitespace normalised either way."""
    value = entry.get(key)
    detail = entry.get(f"{key}_detail") or {}
    if detail.get("type") in _HTML_TYPES:
        return html_to_text(value)
    return clean(value)


def entry_published(entry: Any) -> datetime | None:
    """`published` (else `updated`) as an aware datetime, keeping the feed's UTC offset; falls
    back to feedparser's normalised UTC struct when the raw string is in an exotic format."""
    # dict.get: FeedParserDict maps a missing "updated" to "published" with a warning.
    for key in ("published", "updated"):
        if (parsed := parse_date(dict.get(entry, key))) is not None:
            return parsed
        struct = dict.get(entry, f"{key}_parsed")
        if isinstance(struct, time.struct_time):
            return datetime(*struct[:6], tzinfo=UTC)
    return None


def entry_links(entry: Any) -> list[str]:
    """The entry's link, guid/id and every other link href, in that order, without blanks."""
    out = [entry.get("link"), entry.get("id")]
    out += [link.get("href") for link in entry.get("links") or [] if isinstance(link, dict)]
    return [u.strip() for u in out if isinstance(u, str) and u.strip()]

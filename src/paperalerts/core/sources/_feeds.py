"""feedparser behind a pure, typed front: bytes in, parsed feed out, `ParseError` on anything that
is not an RSS or Atom feed."""

from __future__ import annotations

import io
import itertools
import re
import time
import xml.sax
from datetime import UTC, datetime
from typing import Any, Final

import feedparser
import lxml.etree

from paperalerts.core.sources._text import clean, html_to_text, parse_date
from paperalerts.errors import ParseError

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})

# Size caps per field, checked before feedparser sees the bytes. feedparser splits an author
# string with a regex that backtracks over every run of [A-Za-z0-9_.+-]: quadratic in the run's
# length (an 80k-character author name takes 25 s). No real text has such words, so a feed whose
# text holds a word over WORD_MAX characters, or so many long ones that the regex's work
# (the sum of their squared lengths) passes WORD_WORK_MAX, is refused with the reason: both
# bound that work to well under a second.
WORD_MAX: Final = 2000
LONG_WORD: Final = 64
WORD_WORK_MAX: Final = 25_000_000
_WORDISH: Final = bytes(
    0x61 if (chr(b).isascii() and (chr(b).isalnum() or chr(b) in "_.+-")) else 0x20
    for b in range(256)
)
_LONG_RUN: Final = b"a" * LONG_WORD
# feedparser spends ~0.1 ms per tag (twice when a malformed feed falls back to its loose
# parser), including the markup escaped inside descriptions, which it parses to sanitise. A real
# entry has tens of tags (a few hundred for a full-text post), so one entry (or the channel
# around them) holding more than TAGS_PER_ENTRY_MAX is refused: the cap is per entry, so long
# feeds of ordinary entries are not.
TAGS_PER_ENTRY_MAX: Final = 2000
_ENTRY_START: Final = re.compile(rb"<(?:[A-Za-z_][-\w.]*:)?(?:item|entry)[\s>/]")
_TAG_MARKS: Final = (b"<", b"&lt;", b"&#60;", b"&#x3c;", b"&#x3C;")
_SAFE_XML: Final = lxml.etree.XMLParser(
    recover=True, resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
)


def check_markup(body: bytes, url: str, kind: str) -> None:
    """Refuse a feed in which one entry (or the channel around the entries) carries more than
    `TAGS_PER_ENTRY_MAX` tags, counting escaped markup: ParseError naming the entry."""
    starts = [0, *(m.start() for m in _ENTRY_START.finditer(body)), len(body)]
    for n, (a, b) in enumerate(itertools.pairwise(starts)):
        part = body[a:b]
        tags = sum(part.count(mark) for mark in _TAG_MARKS)
        if tags > TAGS_PER_ENTRY_MAX:
            where = f"entry {n}" if n else "the feed's header"
            raise ParseError(
                f"refused: {where} holds {tags} tags (at most {TAGS_PER_ENTRY_MAX} an entry)",
                url=url, kind=kind)


def check_words(body: bytes, url: str, kind: str) -> None:
    """Refuse a feed whose text (as decoded: character references and encodings resolved, which
    lxml does in linear time) carries a word no feedparser field should take: ParseError saying
    how long, and where. See `WORD_MAX`."""
    try:
        root = lxml.etree.fromstring(body, parser=_SAFE_XML)
    except (lxml.etree.LxmlError, ValueError):
        root = None
    texts: list[str] = []
    if root is not None:
        values = [*root.itertext(), *(v for el in root.iter() for v in el.attrib.values())]
        texts = [str(t) for t in values if len(t) >= LONG_WORD]
    # The raw bytes too: what lxml's recovery dropped, feedparser's loose parser may still read.
    chunks = [body, *(t.encode("utf-8", "surrogatepass") for t in texts)]
    work = 0
    for chunk in chunks:
        flat = chunk.translate(_WORDISH)
        start = flat.find(_LONG_RUN)
        while start != -1:
            end = flat.find(b" ", start)
            end = len(flat) if end == -1 else end
            length = end - start
            if length > WORD_MAX:
                raise ParseError(
                    f"refused: a word of {length} characters (at most {WORD_MAX}): "
                    f"{chunk[start:start + 40]!r}…", url=url, kind=kind)
            work += length * length
            if work > WORD_WORK_MAX:
                raise ParseError(
                    f"refused: too many words of over {LONG_WORD} characters to be text",
                    url=url, kind=kind)
            start = flat.find(_LONG_RUN, end)


def read_feed(body: bytes, url: str, kind: str, *, strict: bool) -> Any:
    """Parse `body` with feedparser, never touching the network or the file system (the bytes go
    in as a stream; `url` only serves as the base for relative links).

    Raises ParseError when the body is not recognisably RSS or Atom, when its text carries words
    too long to be text (`check_words`), or — when `strict` — when it is not well-formed XML
    (truncated, corrupted). A lenient parse keeps what feedparser's
    forgiving parser recovered, as feeds in the wild are often slightly malformed."""
    check_words(body, url, kind)
    check_markup(body, url, kind)
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

"""Small pure helpers shared by the source parsers: text cleaning, dates, author lists, and typed
access to decoded JSON. Nothing here raises anything but `ParseError` (or returns a value)."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import lxml.etree
import lxml.html

# Tags that end a line when rendered: their text must not run into the next element's text.
_BLOCK_TAGS = frozenset({
    "p", "div", "br", "li", "ul", "ol", "tr", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6",
    "blockquote", "pre", "section", "article", "table",
})
# Conservative "this is markup" test for text that is normally plain (JSON summaries): a bare
# `a<b` in an abstract must survive, so only well-known tags or character references count.
_MARKUP_RE = re.compile(
    r"</?(?:p|br|b|i|em|strong|a|sup|sub|span|div|code|ul|ol|li|img)\b[^<>]*>|&(?:#\d+|#x[0-9a-f]+|[a-z]+\d*);",
    re.IGNORECASE,
)


def clean(text: object) -> str:
    """Collapse every run of whitespace to one space and strip; non-strings become ``""``."""
    if not isinstance(text, str):
        return ""
    return " ".join(text.split())  # str.split() splits on Unicode whitespace, like \s


def html_to_text(fragment: object) -> str:
    """Reduce an HTML fragment to whitespace-normalised plain text (entities decoded, tags dropped,
    block elements separated by a space)."""
    if not isinstance(fragment, str):
        return ""
    if "<" not in fragment and "&" not in fragment:
        return clean(fragment)
    try:
        root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    except (lxml.etree.LxmlError, ValueError):
        # libxml2 refuses some inputs (e.g. NUL bytes); the entity-decoded text is the best we have.
        return clean(html.unescape(re.sub(r"<[^>]*>", " ", fragment)))
    return element_text(root)


def element_text(root: lxml.html.HtmlElement) -> str:
    """The visible text of an lxml element, block elements separated, whitespace-normalised."""
    try:
        for el in root.iter():
            if isinstance(el.tag, str) and el.tag.lower() in _BLOCK_TAGS:
                el.tail = " " + (el.tail or "")
    except ValueError:  # lxml read a control character it refuses to write back: no separators
        pass
    return clean(root.text_content())


def text_maybe_html(text: object) -> str:
    """Plain text that may carry stray markup: reduce it only when it visibly contains tags or
    character references, else just normalise whitespace (keeps ``p<q`` intact)."""
    if not isinstance(text, str):
        return ""
    return html_to_text(text) if _MARKUP_RE.search(text) else clean(text)


def parse_date(raw: object) -> datetime | None:
    """ISO 8601 or RFC 822 date -> timezone-aware datetime (naive input is taken as UTC); None when
    absent or unreadable."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    raw = raw.strip()
    parsed: datetime | None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        try:
            parsed = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def split_authors(raw: str) -> tuple[str, ...]:
    """Split a ``"A, B, C and D"`` author string into names."""
    text = clean(raw)
    if not text:
        return ()
    parts = re.split(r",\s*(?:and\s+)?|\s+and\s+", text)
    return tuple(p for p in (clean(x) for x in parts) if p)


# --- typed access to decoded JSON ----------------------------------------------------------


def as_dict(value: object) -> dict[str, Any]:
    """`value` when it is a JSON object, else an empty dict."""
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[Any]:
    """`value` when it is a JSON array, else an empty list."""
    return value if isinstance(value, list) else []


def as_str(value: object) -> str | None:
    """A non-empty stripped string, else None."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def as_int(value: object) -> int | None:
    """An integer (JSON number or digit string, ``-`` meaning 0 as HF renders it), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text == "-":
            return 0
        # isdigit() alone accepts "²"; the length cap keeps int() within its digit limit.
        if text.isascii() and text.isdigit() and len(text) < 19:
            return int(text)
    return None

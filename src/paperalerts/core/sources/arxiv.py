"""arXiv feeds: the RSS 2.0 of ``rss.arxiv.org`` and the Atom of the query API (current and
legacy formats).

RSS items carry ``guid`` ``oai:arXiv.org:<id>v<N>``, a description ``arXiv:<id>v<N> Announce
Type: <type> \\nAbstract: <abstract>``, ``arxiv:announce_type`` and the authors as one
comma-separated ``dc:creator``. API entries carry ``<id>http://arxiv.org/abs/<id>v<N></id>``,
one ``<author><name>`` each, ``arxiv:primary_category``, optional comment, DOI, journal ref.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import lxml.etree

from paperalerts.core.papers import Paper, arxiv_id_from_url, normalize_arxiv_id
from paperalerts.core.sources._feeds import detail_text, entry_links, entry_published, read_feed
from paperalerts.core.sources._text import clean, split_authors, text_maybe_html
from paperalerts.errors import ParseError

KIND = "arxiv"
ABS_URL = "https://arxiv.org/abs/{}"
PDF_URL = "https://arxiv.org/pdf/{}"
# arXiv announces on US Eastern days; its RSS pubDate is 00:00 -0400/-0500.
ARXIV_TZ = ZoneInfo("America/New_York")

_OAI_RE = re.compile(r"^oai:arXiv\.org:(?P<id>\S+)$", re.IGNORECASE)
_VERSION_RE = re.compile(r"v(\d+)$")
_PREFIX_RE = re.compile(
    r"^arXiv:\S+\s+Announce Type:\s*(?P<type>[\w-]+)\s+Abstract:\s*", re.IGNORECASE
)
# RSS <skipDays> names days in English; strftime("%A") would follow the locale.
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_SAFE_XML = lxml.etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def parse(body: bytes, url: str) -> list[Paper]:
    """Parse an arXiv RSS feed or API Atom response into Papers, in feed order.

    An empty but well-formed feed (the weekend RSS) returns []; use `is_quiet_day` to tell that
    from an outage. Raises ParseError when the body is not a well-formed RSS/Atom feed from
    arxiv.org, when the API answered with its error entry, or when an entry has no arXiv id."""
    parsed = read_feed(body, url, KIND, strict=True)
    if not _from_arxiv(parsed.get("feed") or {}):
        raise ParseError(
            "not an arXiv feed: its channel/feed link and id do not point at arxiv.org",
            url=url, kind=KIND,
        )
    is_rss = str(parsed.get("version", "")).startswith("rss")
    return [_paper(entry, i, is_rss, url) for i, entry in enumerate(parsed.get("entries") or [])]


def _from_arxiv(feed: Any) -> bool:
    """Whether the channel (RSS) or feed (Atom) names arxiv.org as its home: rss.arxiv.org
    channels link there, API responses have an ``arxiv.org/api/…`` id. A third-party feed that
    merely links arXiv papers is a `feed` source, not an `arxiv` one."""
    hrefs = [feed.get("link"), feed.get("id")]
    hrefs += [link.get("href") for link in feed.get("links") or [] if isinstance(link, dict)]
    return any(isinstance(h, str) and "arxiv.org" in h.lower() for h in hrefs)


def _paper(entry: Any, index: int, is_rss: bool, url: str) -> Paper:
    entry_id = clean(entry.get("id"))
    if "arxiv.org/api/errors" in entry_id:
        message = clean(entry.get("summary")) or entry_id
        raise ParseError(f"arXiv API answered an error: {message}", url=url, kind=KIND)
    versioned = _versioned_id(entry)
    if versioned is None:
        raise ParseError(
            f"entry {index} ({entry_id or clean(entry.get('title'))!r}): no arXiv id in its id, "
            "guid or links",
            url=url, kind=KIND,
        )
    arxiv_id = normalize_arxiv_id(versioned) or versioned

    extra: dict[str, Any] = {}
    if (v := _VERSION_RE.search(versioned)) is not None:
        extra["version"] = int(v.group(1))
    categories = [clean(t.get("term")) for t in entry.get("tags") or [] if clean(t.get("term"))]
    primary = clean((entry.get("arxiv_primary_category") or {}).get("term"))
    if categories:
        extra["categories"] = categories
    if primary or categories:
        extra["primary_category"] = primary or categories[0]

    title = detail_text(entry, "title")
    if not title:
        raise ParseError(f"entry {index} ({arxiv_id}): no title", url=url, kind=KIND)
    # The RSS description is plain text declared as HTML: reduce only real markup, so an
    # abstract's "p<0.05" survives.
    abstract = text_maybe_html(entry.get("summary"))
    if prefix := _PREFIX_RE.match(abstract):
        extra["announce_type"] = prefix.group("type").lower()
        abstract = abstract[prefix.end():]
    if announce := clean(entry.get("arxiv_announce_type")):
        extra["announce_type"] = announce

    names = [clean(a.get("name")) for a in entry.get("authors") or [] if isinstance(a, dict)]
    names = [n for n in names if n]
    if is_rss and len(names) == 1:
        names = list(split_authors(names[0]))  # dc:creator is one comma-separated list

    if not is_rss and (updated := clean(dict.get(entry, "updated"))):
        extra["updated"] = updated
    for key in ("comment", "doi", "journal_ref"):
        if value := clean(entry.get(f"arxiv_{key}")):
            extra[key] = value

    return Paper(
        id=arxiv_id,
        title=title,
        source=KIND,
        abstract=abstract,
        authors=tuple(names),
        url=ABS_URL.format(arxiv_id),
        pdf_url=PDF_URL.format(arxiv_id),
        published=entry_published(entry),
        extra=extra,
    )


def _versioned_id(entry: Any) -> str | None:
    """The id as the entry gives it (``2604.21952v1``), from the OAI guid, the id or a link."""
    oai = _OAI_RE.match(clean(entry.get("id")))
    if oai is not None and normalize_arxiv_id(oai.group("id")):
        return oai.group("id")
    for link in entry_links(entry):
        m = re.search(r"arxiv\.org/(?:abs|pdf)/(\S+?)(?:\.pdf)?$", link, re.IGNORECASE)
        if m and normalize_arxiv_id(m.group(1)):
            return m.group(1)
        if found := arxiv_id_from_url(link):
            return found
    return None


def is_quiet_day(body: bytes, now: datetime) -> bool:
    """True when `body` is an arXiv RSS feed with no items and `now` falls, on arXiv's clock
    (US Eastern), on one of the channel's ``<skipDays>`` — a quiet day, not a failure.

    False for a feed with items, or an empty feed on a day arXiv announces (an outage or a
    holiday: worth flagging). Raises ValueError for a naive `now` and ParseError when `body` is
    not an RSS feed."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("is_quiet_day needs a timezone-aware `now`")
    try:
        root = lxml.etree.fromstring(body, parser=_SAFE_XML)
    except (lxml.etree.LxmlError, ValueError) as e:
        raise ParseError(f"not well-formed XML: {e}", kind=KIND) from None
    channel = root.find("channel") if root.tag == "rss" else None
    if channel is None:
        raise ParseError(f"not an RSS feed (root element <{root.tag}>)", kind=KIND)
    if channel.find("item") is not None:
        return False
    skip = {clean(d.text).lower() for d in channel.iterfind("skipDays/day")}
    return _WEEKDAYS[now.astimezone(ARXIV_TZ).weekday()] in skip

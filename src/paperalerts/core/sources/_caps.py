"""Size caps per field, checked on a feed's bytes before feedparser sees them, so that hostile
feeds cost bounded time: each check is linear (C-speed scans and lxml), and what it refuses is
a `ParseError` that says which cap and where (the scrape records it as a rejection).

* **Author fields.** feedparser splits an author string with a regex that backtracks over every
  run of ``[A-Za-z0-9_.+-]``: quadratic in the run's length (an 80,000-character author name
  takes 25 s). No name has a word near `AUTHOR_WORD_MAX` characters, so an author field holding
  one is refused, and so is a feed whose author words together would cost that regex more than
  `AUTHOR_WORK_MAX` (the sum of squared lengths of words of `LONG_WORD` or more).
* **Tags per entry.** feedparser spends ~0.1 ms per tag (twice when a malformed feed falls back
  to its loose parser), escaped markup in descriptions included (it parses that to sanitise).
  A real entry has tens of tags, a full-text post a few hundred, so an entry (or the channel
  around the entries) holding more than `TAGS_PER_ENTRY_MAX` is refused: the cap is per entry,
  so long feeds of ordinary entries pass.
* **Unclosed tags.** A tag that runs on for `TAG_MAX` characters and never closes (the next
  bracket opens another tag, or there is none; escaped, ``&lt;`` without ``&gt;``) makes
  feedparser's loose parser rescan it again and again (a 3 MB one took 14 s). A long tag that
  does close (an inline image's data URL) costs nothing and passes.
"""

from __future__ import annotations

import html
import itertools
import re
from typing import Final

import lxml.etree

from paperalerts.errors import ParseError

AUTHOR_WORD_MAX: Final = 500
LONG_WORD: Final = 64
AUTHOR_WORK_MAX: Final = 25_000_000  # ~0.3 s of feedparser's author regex
TAGS_PER_ENTRY_MAX: Final = 2000
TAG_MAX: Final = 16_384
# Unclosed: the next bracket after the run is another opening one, or there is none (possessive
# runs keep the search linear: each character is looked at once per opening bracket before it).
_LONG_TAG: Final = re.compile(
    rb"<[^<>]{%d,}+(?=<|\Z)|&lt;(?:(?!&[lg]t;)[^<>]){%d,}+(?=<|&lt;|\Z)" % (TAG_MAX, TAG_MAX)
)

# Elements whose text feedparser treats as an author (RSS author, dc:creator, managingEditor,
# webMaster, dc:publisher, itunes:author and owner, Atom author/contributor name and email).
_AUTHOR_TAGS: Final = frozenset({"author", "creator", "name", "email", "contributor",
                                 "managingeditor", "webmaster", "publisher", "owner"})
_AUTHOR_OPEN: Final = re.compile(
    rb"<(?:[A-Za-z_][-\w.]{0,40}:)?(?:author|creator|name|email|contributor|managingeditor"
    rb"|webmaster|publisher|owner)\b[^<>]{0,500}>",
    re.IGNORECASE,
)
_CDATA: Final = b"<![CDATA["
_WORDISH: Final = bytes(
    0x61 if (chr(b).isascii() and (chr(b).isalnum() or chr(b) in "_.+-")) else 0x20
    for b in range(256)
)
_LONG_RUN: Final = b"a" * LONG_WORD
_ENTRY_START: Final = re.compile(rb"<(?:[A-Za-z_][-\w.]{0,40}:)?(?:item|entry)[\s>/]")
_TAG_MARKS: Final = (b"<", b"&lt;", b"&#60;", b"&#x3c;", b"&#x3C;")
_SAFE_XML: Final = lxml.etree.XMLParser(
    recover=True, resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
)


def check_markup(body: bytes, url: str, kind: str) -> None:
    """Refuse a feed with a tag over `TAG_MAX` characters, or in which one entry (or the channel
    around the entries) carries more than `TAGS_PER_ENTRY_MAX` tags, escaped markup counted:
    ParseError naming the entry. A page with no entry at all and that many tags is no feed, and
    is refused as one."""
    if (long_tag := _LONG_TAG.search(body)) is not None:
        raise ParseError(
            f"refused: a tag at byte {long_tag.start()} runs on for over {TAG_MAX} characters "
            f"and never closes: {body[long_tag.start():long_tag.start() + 40]!r}…",
            url=url, kind=kind)
    starts = [0, *(m.start() for m in _ENTRY_START.finditer(body)), len(body)]
    for n, (a, b) in enumerate(itertools.pairwise(starts)):
        part = body[a:b]
        tags = sum(part.count(mark) for mark in _TAG_MARKS)
        if tags <= TAGS_PER_ENTRY_MAX:
            continue
        if len(starts) == 2:
            raise ParseError(f"not an RSS or Atom feed: no entry in {tags} tags", url=url,
                             kind=kind)
        where = f"entry {n}" if n else "the feed's header"
        raise ParseError(
            f"refused: {where} holds {tags} tags (at most {TAGS_PER_ENTRY_MAX} an entry)",
            url=url, kind=kind)


def check_authors(body: bytes, url: str, kind: str) -> None:
    """Refuse a feed whose author fields hold a word over `AUTHOR_WORD_MAX` characters, or long
    words costing more than `AUTHOR_WORK_MAX` together: ParseError saying which. The fields are
    read twice: from the raw bytes (what feedparser's forgiving parser may read in a broken
    feed) and through lxml (character references and encodings resolved)."""
    work = 0
    for text in _author_texts(body):
        flat = text.translate(_WORDISH)
        start = flat.find(_LONG_RUN)
        while start != -1:
            end = flat.find(b" ", start)
            end = len(flat) if end == -1 else end
            length = end - start
            if length > AUTHOR_WORD_MAX:
                raise ParseError(
                    f"refused: an author field holds a word of {length} characters (at most "
                    f"{AUTHOR_WORD_MAX}): {text[start:start + 40]!r}…", url=url, kind=kind)
            work += length * length
            if work > AUTHOR_WORK_MAX:
                raise ParseError(
                    f"refused: author fields hold too many words of over {LONG_WORD} "
                    "characters to be names", url=url, kind=kind)
            start = flat.find(_LONG_RUN, end)


def _author_texts(body: bytes) -> list[bytes]:
    """The text of every author-like element, from the raw bytes and from lxml's tree."""
    out: list[bytes] = []
    for m in _AUTHOR_OPEN.finditer(body):
        at = m.end()
        end = body.find(b"]]>", at) if body.startswith(_CDATA, at) else body.find(b"<", at)
        raw = body[at:len(body) if end == -1 else end]
        if len(raw) >= LONG_WORD:
            # Character references (&#65;) spell the same letters to feedparser.
            out.append(html.unescape(raw.decode("utf-8", "replace")).encode("utf-8", "replace"))
    try:
        root = lxml.etree.fromstring(body, parser=_SAFE_XML)
    except (lxml.etree.LxmlError, ValueError):
        return out
    if root is None:
        return out
    for el in root.iter():
        tag = el.tag if isinstance(el.tag, str) else ""
        if tag.rsplit("}", 1)[-1].lower() in _AUTHOR_TAGS:
            text = "".join(str(t) for t in el.itertext())
            if len(text) >= LONG_WORD:
                out.append(text.encode("utf-8", "surrogatepass"))
    return out

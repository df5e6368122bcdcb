"""A generic HTML list page as a source: admin-entered CSS selectors say where the papers are.

For trending pages that publish no feed. The page is parsed with BeautifulSoup on the lxml
backend; the selectors are CSS (soupsieve's dialect, as in a browser's ``querySelector``):

* ``item``: every element it matches in the page is one paper (required);
* ``title``, ``link``: inside an item, the paper's title text and its link (required);
* ``id``: inside an item, the paper's id (optional: else the link is the id);
* ``abstract``, ``authors``: inside an item (optional); several ``authors`` matches are one
  author each, a single match is a comma/"and"-separated list.

Field selectors match inside the item; ``:scope`` is the item itself. A selector may end in
``@attribute`` to read that attribute instead of the text
(``span.paper@data-id``). ``link`` reads ``href`` by default, from the matched element or the
first link inside it. Relative links are resolved against the page's URL. An id that holds an
arXiv id (``2406.01234``, ``/papers/2406.01234``, an arXiv URL) becomes that arXiv id, so a paper
seen here and on arXiv is one paper; any other id becomes ``html:<id>``.

The selectors live in the source's options (``{"selectors": {...}}``); `selectors_from_options`
is the one function that turns those (or a form, or CLI flags) into a checked `Selectors` value,
raising `SelectorError` that names the bad field and selector.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from urllib.parse import urljoin, urlsplit

import lxml.etree
import soupsieve
from bs4 import BeautifulSoup, Tag

from paperalerts.core.papers import Paper, canonical_id, normalize_arxiv_id
from paperalerts.core.sources._text import clean, split_authors
from paperalerts.errors import ParseError

KIND = "html"
FIELDS: tuple[str, ...] = ("item", "title", "link", "id", "abstract", "authors")
REQUIRED: tuple[str, ...] = ("item", "title", "link")
# `selector@attr`: an attribute name at the very end, after the last "@" outside brackets.
_ATTR_RE = re.compile(r"^(?P<css>.*?)\s*@(?P<attr>[A-Za-z_:][-\w:.]*)$", re.DOTALL)
_MAX_SELECTOR = 500
# Selectors walk ancestors, and BeautifulSoup relinks them, so their cost grows with nesting
# depth times elements: 20,000 nested <div>s took 70 s. Real list pages nest a few dozen deep
# (the HF Daily Papers page: 20) and hold a few thousand elements.
MAX_DEPTH = 256
MAX_ELEMENTS = 100_000
# What `_check` runs each selector on: a selector that runs here runs on any page.
_EMPTY_PAGE = BeautifulSoup("<html><body><div><a href='x'>x</a></div></body></html>", "lxml")


class SelectorError(ValueError):
    """A selector is missing or is not valid CSS. `field` names which one (``item``, ...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field} selector: {message}")
        self.field = field


@dataclass(frozen=True)
class Selectors:
    """A checked set of selectors (see the module docstring). Empty optional fields are unused."""

    item: str
    title: str
    link: str
    id: str = ""
    abstract: str = ""
    authors: str = ""

    def to_options(self) -> dict[str, dict[str, str]]:
        """The source-options shape that stores these (only the fields that are set)."""
        return {"selectors": {k: v for k, v in asdict(self).items() if v}}


@dataclass(frozen=True)
class Extraction:
    """What the selectors found on a page: the papers, how many items matched, and one line per
    item that was skipped (no title or no link) saying which and why."""

    papers: tuple[Paper, ...]
    items: int
    skipped: tuple[str, ...] = ()


def selectors_from_options(options: Mapping[str, object] | None) -> Selectors:
    """The checked selectors of a source's options, either ``{"selectors": {...}}`` or the
    field mapping itself. Raises SelectorError naming the first missing or invalid one."""
    raw = (options or {}).get("selectors", options or {})
    if not isinstance(raw, Mapping):
        raise SelectorError("item", "the source's options hold no selectors")
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise SelectorError(
            str(unknown[0]), f"unknown field; expected some of: {', '.join(FIELDS)}"
        )
    values: dict[str, str] = {}
    for field in FIELDS:
        value = raw.get(field, "")
        if not isinstance(value, str):
            raise SelectorError(field, f"must be text, not {type(value).__name__}")
        value = value.strip()
        if not value:
            if field in REQUIRED:
                raise SelectorError(field, "is required")
            continue
        _check(field, value)
        values[field] = value
    return Selectors(**values)


def _check(field: str, selector: str) -> None:
    """Refuse a selector that could not run: everything a scrape will do with it is tried here,
    on an empty page, so a saved selector never fails later (soupsieve raises
    NotImplementedError for pseudo-elements such as ``::before``, which match nothing in a page
    without styles; ``item`` must select elements, so it cannot end in ``@attr``)."""
    if len(selector) > _MAX_SELECTOR:
        raise SelectorError(field, f"longer than {_MAX_SELECTOR} characters")
    css, attr = _split_attr(selector)
    if not css:
        raise SelectorError(field, f"{selector!r} names an attribute but no element")
    if attr and field == "item":
        raise SelectorError(
            field,
            f"{selector!r} ends in @{attr}, but each item is an element: read attributes in the "
            f"field selectors (title, link, id, abstract, authors), e.g. 'a@{attr}'",
        )
    try:
        compiled = soupsieve.compile(css)
        compiled.select(_EMPTY_PAGE)
    except soupsieve.SelectorSyntaxError as e:
        first = str(e).splitlines()[0]
        raise SelectorError(field, f"{selector!r} is not valid CSS: {first}") from None
    except NotImplementedError as e:  # pseudo-elements (::before) and the like
        raise SelectorError(field, f"{selector!r} cannot be used: {e}") from None
    except (ValueError, TypeError, RecursionError) as e:  # anything else soupsieve refuses
        raise SelectorError(field, f"{selector!r} cannot be used: {e}") from None


def _split_attr(selector: str) -> tuple[str, str]:
    m = _ATTR_RE.match(selector)
    if m is None or m.group("css").count("[") != m.group("css").count("]"):
        return selector.strip(), ""
    return m.group("css").strip(), m.group("attr")


def parse(body: bytes, url: str, options: Mapping[str, object] | None = None) -> list[Paper]:
    """The papers on the page `body` (fetched from `url`) under the selectors in `options`.

    Raises ParseError when the selectors are missing or invalid, when the page is not HTML, or
    when the item selector matches nothing or no item yields a title and a link (the page's
    layout most likely changed)."""
    try:
        selectors = selectors_from_options(options)
    except SelectorError as e:
        raise ParseError(str(e), url=url, kind=KIND) from None
    found = extract(body, url, selectors)
    if not found.items:
        raise ParseError(f"item selector {selectors.item!r} matched nothing", url=url, kind=KIND)
    if not found.papers:
        why = found.skipped[0] if found.skipped else "no paper"
        raise ParseError(f"none of {found.items} items gave a paper: {why}", url=url, kind=KIND)
    return list(found.papers)


def extract(body: bytes, url: str, selectors: Selectors) -> Extraction:
    """Apply `selectors` to the page: every item's paper, or why it was skipped. The admin's and
    the CLI's preview show this before a source is saved. Raises ParseError for a body that is
    not an HTML page."""
    if not body.strip():
        raise ParseError("empty page", url=url, kind=KIND)
    if body.lstrip()[:1] in (b"{", b"["):
        raise ParseError("this is JSON, not an HTML page", url=url, kind=KIND)
    _check_shape(body, url)
    soup = BeautifulSoup(body, "lxml")
    items = soup.select(selectors.item)
    papers: list[Paper] = []
    skipped: list[str] = []
    seen: set[str] = set()
    for n, item in enumerate(items, 1):
        title = _text_of(item, selectors.title)
        link = _link_of(item, selectors.link, url)
        if not title or not link:
            missing = "title" if not title else "link"
            chosen = selectors.title if not title else selectors.link
            skipped.append(f"item {n}: {missing} selector {chosen!r} found nothing")
            continue
        raw_id = _text_of(item, selectors.id) if selectors.id else ""
        pid = _paper_id(raw_id, link)
        if pid in seen:
            skipped.append(f"item {n}: {pid} listed twice")
            continue
        seen.add(pid)
        papers.append(
            Paper(
                id=pid,
                title=title,
                source=KIND,
                abstract=_text_of(item, selectors.abstract) if selectors.abstract else "",
                authors=_authors_of(item, selectors.authors) if selectors.authors else (),
                url=link,
            )
        )
    return Extraction(tuple(papers), len(items), tuple(skipped))


def _check_shape(body: bytes, url: str) -> None:
    """Refuse a page nested deeper than `MAX_DEPTH` or with more than `MAX_ELEMENTS` elements,
    measured in one linear pass of libxml2's HTML parser (the one BeautifulSoup's lxml builder
    drives, so it sees the same tree)."""
    depth = deepest = elements = 0
    try:
        for event, _ in lxml.etree.iterparse(io.BytesIO(body), events=("start", "end"),
                                             html=True, recover=True, huge_tree=False):
            if event == "end":
                depth -= 1
                continue
            depth += 1
            elements += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH or elements > MAX_ELEMENTS:
                what = (f"nests elements over {MAX_DEPTH} deep" if deepest > MAX_DEPTH
                        else f"has over {MAX_ELEMENTS} elements")
                raise ParseError(f"refused: the page {what}", url=url, kind=KIND)
    except (lxml.etree.LxmlError, ValueError):
        return  # nothing libxml2 can read: BeautifulSoup decides what it is


def _value(el: Tag, attr: str) -> str:
    if not attr:
        return clean(el.get_text(" "))
    value = el.get(attr)
    if isinstance(value, list):  # multi-valued attributes such as class
        value = " ".join(value)
    return clean(value or "")


def _first(item: Tag, css: str) -> Tag | None:
    return item if css == ":scope" else item.select_one(css)


def _text_of(item: Tag, selector: str) -> str:
    css, attr = _split_attr(selector)
    el = _first(item, css)
    return _value(el, attr) if el is not None else ""


def _link_of(item: Tag, selector: str, base: str) -> str:
    css, attr = _split_attr(selector)
    el = _first(item, css)
    if el is None:
        return ""
    if not attr:
        attr = "href"
        if el.get("href") is None:
            el = el.find("a", href=True) or el
    href = _value(el, attr)
    if not href:
        return ""
    absolute = urljoin(base, href)
    return absolute if urlsplit(absolute).scheme in ("http", "https") else ""


def _authors_of(item: Tag, selector: str) -> tuple[str, ...]:
    css, attr = _split_attr(selector)
    values = [v for v in (_value(el, attr) for el in item.select(css)) if v]
    if len(values) == 1:
        return split_authors(values[0])
    return tuple(values)


def _paper_id(raw_id: str, link: str) -> str:
    """An arXiv id found in the id (or, without one, the link), else ``html:<id or link>``."""
    source = raw_id or link
    found = canonical_id(KIND, source, link)
    if not found.startswith(f"{KIND}:"):
        return found
    # `/papers/2406.01234` or `.../abs/2406.01234v2`: the last path segment is the id.
    last = urlsplit(source).path.rstrip("/").rsplit("/", 1)[-1]
    return normalize_arxiv_id(last) or found

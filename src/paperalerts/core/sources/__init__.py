"""Source parsers: the bytes a source served -> the papers on it. Pure: no I/O, no clock.

Every kind's module exposes ``parse(body: bytes, url: str) -> list[Paper]``; `url` only says
where the bytes came from (error messages, relative links). The ``html`` kind also takes the
source's options (its CSS selectors). Contract for all kinds:

* a page or feed that is not of its kind, or garbage, raises `ParseError` saying what and where,
  never another exception;
* a well-formed but empty feed or list (arXiv RSS on a weekend) returns ``[]``;
* titles and abstracts are whitespace-normalised plain text, authors a tuple of names,
  ``published`` timezone-aware or None, ``Paper.source`` the kind string, ``Paper.id`` canonical.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from paperalerts.core.paper_links import http_url
from paperalerts.core.papers import Paper
from paperalerts.core.sources import arxiv, feed, hf_api, hf_papers, html_list

KINDS: tuple[str, ...] = ("hf-papers", "hf-api", "arxiv", "feed", "html")

_PARSERS: dict[str, Callable[[bytes, str], list[Paper]]] = {
    "hf-papers": hf_papers.parse,
    "hf-api": hf_api.parse,
    "arxiv": arxiv.parse,
    "feed": feed.parse,
}


def check_options(kind: str, options: Mapping[str, object] | None) -> None:
    """Refuse options a scrape of `kind` could not run with (html: missing, invalid or unusable
    selectors): raises `html_list.SelectorError` naming the field. Other kinds take no options."""
    if kind == html_list.KIND:
        html_list.selectors_from_options(options)


def parse(
    kind: str, body: bytes, url: str, options: Mapping[str, object] | None = None
) -> list[Paper]:
    """Parse `body` (fetched from `url`) as a source of `kind`; `options` are the source's own
    (only html reads them: its selectors). Every link of every paper returned is http(s).

    Raises ValueError for an unknown kind (naming the known ones) and ParseError when the body is
    not a page or feed of that kind (or, for html, the selectors are missing or invalid)."""
    if kind == html_list.KIND:
        return [_http_links(p) for p in html_list.parse(body, url, options)]
    try:
        parser = _PARSERS[kind]
    except KeyError:
        known = ", ".join(KINDS)
        raise ValueError(f"unknown source kind {kind!r}; expected one of: {known}") from None
    return [_http_links(p) for p in parser(body, url)]


def _http_links(p: Paper) -> Paper:
    """The paper with only http(s) links: a ``javascript:`` or ``data:`` link a page carries is
    dropped here, before it is stored (renderers check again: rows stored earlier exist)."""
    url, pdf, code = http_url(p.url) or "", http_url(p.pdf_url), http_url(p.code_url)
    if (url, pdf, code) == (p.url, p.pdf_url, p.code_url):
        return p
    return replace(p, url=url, pdf_url=pdf, code_url=code)


__all__ = ["KINDS", "arxiv", "check_options", "feed", "hf_api", "hf_papers", "html_list", "parse"]

"""Checking a source before it is saved: fetch its URL once and parse the body as its kind.
The CLI (`sources add`, `sources set`) and the admin's "Add a source" call this one step, so a
wrong-kind or unreachable URL is refused the same way everywhere, with one line that says what
is wrong and what to do."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from paperalerts.core import sources as source_kinds
from paperalerts.core.papers import Paper
from paperalerts.core.sources import html_list
from paperalerts.errors import FetchError, ParseError
from paperalerts.pipeline.scrape import FetcherLike


class SourceCheckFailed(ValueError):
    """The URL could not be fetched (`fetch` True) or did not parse as the kind; the message
    says which, and for a page of another kind, which kinds it does parse as."""

    def __init__(self, message: str, *, fetch: bool) -> None:
        super().__init__(message)
        self.fetch = fetch


@dataclass(frozen=True)
class CheckedSource:
    """What the check found: the papers the page lists now."""

    papers: tuple[Paper, ...]


def check_source_page(
    fetcher: FetcherLike, kind: str, url: str, options: Mapping[str, object] | None = None, *,
    allow_private: bool = False,
) -> CheckedSource:
    """Fetch `url` with `fetcher` and parse it as `kind` (with the source's `options`); raises
    SourceCheckFailed. `allow_private` only words the hint for the SSRF guard's refusal."""
    try:
        body = fetcher.fetch(url).body
    except FetchError as e:
        hint = ""
        if "non-public address" in str(e) and not allow_private:
            hint = (" (a source on this machine or your network needs "
                    "PAPERALERTS_ALLOW_PRIVATE_URLS=true)")
        raise SourceCheckFailed(f"cannot fetch {url}: {e}{hint}", fetch=True) from e
    try:
        papers = source_kinds.parse(kind, body, url, options)
    except ParseError as e:
        fits = [k for k in source_kinds.KINDS
                if k not in (kind, html_list.KIND) and _parses(k, body, url)]
        guess = f"; it parses as {' or '.join(fits)}" if fits else ""
        raise SourceCheckFailed(f"{url} is not a {kind} page: {e}{guess}", fetch=False) from e
    return CheckedSource(tuple(papers))


def _parses(kind: str, body: bytes, url: str) -> bool:
    try:
        return bool(source_kinds.parse(kind, body, url))
    except ParseError:
        return False

"""Hostile pages and selectors, with bounded budgets (a few seconds each; the long run is
``benchmarks/fuzz_hostile.py``): every parser answers mutated real fixtures with papers or a
ParseError, never another exception; a selector set is refused at save or runs; the field caps
refuse what would make feedparser slow, and the scrape records that as a rejection."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from functools import cache

import pytest
from bs4 import BeautifulSoup
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker

from conftest import FIXTURES, fixture_file
from fuzz_support import (
    KIND_FIXTURES,
    fixture_files,
    mutate,
    parse_outcome,
    selector_set,
    selectors_outcome,
)
from paperalerts.core.sources import parse
from paperalerts.core.sources._caps import AUTHOR_WORD_MAX, TAGS_PER_ENTRY_MAX
from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.errors import ParseError
from paperalerts.pipeline import scrape_source

FUZZ = settings(max_examples=15, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])
T0 = datetime(2026, 8, 1, 6, tzinfo=UTC)


def rss(author: str, description: str = "d", items: int = 1) -> bytes:
    item = (f"<item><title>A paper</title><link>https://example.org/p/{{}}</link>"
            f"<author>{author}</author><description>{description}</description></item>")
    return ('<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
            "<link>https://example.org/</link>" + "".join(item.format(i) for i in range(items))
            + "</channel></rss>").encode()


@cache
def _bodies(kind: str) -> list[bytes]:
    files = fixture_files(FIXTURES, kind)
    if not files:
        pytest.skip(f"no fixtures for {kind} under {FIXTURES}")
    return [p.read_bytes() for p in files]


@pytest.mark.parametrize("kind", sorted(KIND_FIXTURES))
@FUZZ
@given(r=st.randoms(use_true_random=False))
def test_mutated_fixtures_give_papers_or_a_parse_error(kind: str, r: random.Random) -> None:
    """Byte flips, cuts, repeated slices, long runs, deep nesting, character references and
    truncation of real fixture files: the parser returns papers or raises ParseError."""
    outcome = parse_outcome(kind, mutate(r.choice(_bodies(kind)), r))
    assert outcome.status != "crash", outcome.detail


@cache
def _small_page() -> bytes:
    """The Daily Papers page cut to its first four cards (fast enough for many examples)."""
    soup = BeautifulSoup(fixture_file("hf_papers_html/hf_papers_daily_2026-09-28.html")
                         .read_bytes(), "lxml")
    cards = "".join(str(a) for a in soup.select("article")[:4])
    return f"<html><body><div class='c1'>{cards}</div></body></html>".encode()


@settings(max_examples=150, deadline=None, database=None)
@given(r=st.randoms(use_true_random=False))
def test_a_selector_set_is_refused_at_save_or_runs(r: random.Random) -> None:
    """Random selector sets (pseudo-classes and -elements, combinators, @attr, garbage): the
    one validation function refuses them with SelectorError, or a scrape can run them."""
    outcome = selectors_outcome(selector_set(r), _small_page())
    assert outcome.status != "crash", outcome.detail


def test_an_80k_character_author_name_is_refused_with_the_reason() -> None:
    """The fuzzing find: an RSS author name of 80,000 characters took 22-27 s in feedparser's
    quadratic author regex. It is refused before feedparser runs, naming the cap (also when
    spelled as character references)."""
    for author in ("A" * 80_000, "&#65;" * 80_000):
        cap = f"an author field holds a word of 80000 characters .at most {AUTHOR_WORD_MAX}"
        with pytest.raises(ParseError, match=cap):
            parse("feed", rss(author), "https://example.org/feed")


def test_many_long_words_and_tag_floods_are_refused() -> None:
    """Words each under the cap but together quadratic work, and one entry with thousands of
    tags, are refused naming why."""
    with pytest.raises(ParseError, match="too many words of over 64"):
        parse("feed", rss(("B" * 499 + " ") * 200), "https://example.org/feed")
    with pytest.raises(ParseError, match=rf"entry 1 holds \d+ tags .at most {TAGS_PER_ENTRY_MAX}"):
        parse("feed", rss("Ann", "<b>x</b>" * 3_000), "https://example.org/feed")


def test_a_tag_that_never_closes_is_refused() -> None:
    """A fuzzing find: ``<guid`` followed by 3 MB without a ``>`` made feedparser's loose parser
    rescan it chunk after chunk (14 s). Refused at once, naming the byte."""
    body = rss("Ann").replace(b"<item>", b"<item><guid" + b"x" * 3_000_000, 1)
    with pytest.raises(ParseError, match=r"a tag at byte \d+ runs on for over 16384 characters"):
        parse("feed", body, "https://example.org/feed")


def test_a_list_page_nested_thousands_deep_is_refused() -> None:
    """A fuzzing find: thousands of nested <div>s around the cards made the selectors walk
    ancestors for a minute. Refused before BeautifulSoup builds the tree."""
    page = _small_page().replace(b"<body>", b"<body>" + b"<div>" * 3_000, 1)
    with pytest.raises(ParseError, match="nests elements over 256 deep"):
        parse("html", page, "https://example.org/", {"selectors": {
            "item": "article", "title": "h3 a", "link": "h3 a"}})


def test_a_control_character_after_markup_in_a_description_is_not_a_crash() -> None:
    """A fuzzing find (seed 17, case 5081): a control character after a block element in a
    description (``<p>a</p>\\x01b``) made lxml refuse to write back the separator the text
    reduction adds (ValueError: an uncaught crash of the scrape). The text is read."""
    from paperalerts.core.sources._text import html_to_text

    assert html_to_text("<p>Graph</p>\x01transformers").startswith("Graph")


def test_real_long_author_lists_and_long_feeds_still_parse() -> None:
    """No false refusal: a 3,000-name collaboration author list and 300 ordinary entries."""
    names = ", ".join(f"Author{i} Surname{i}" for i in range(3_000))
    (paper,) = parse("feed", rss(names), "https://example.org/feed")
    assert paper.authors[-1].endswith("Author2999 Surname2999")
    assert len(parse("feed", rss("Ann", "<p>An <b>abstract</b>.</p>", 300), "u")) == 300


def test_the_scrape_of_a_hostile_feed_is_rejected_and_the_source_degraded(
    db: sessionmaker[Session],
) -> None:
    """The scrape records the refusal as a rejected snapshot with the reason and marks the
    source as DESIGN §5 says (degraded after a healthy past); nothing is diffed."""
    with transaction(db) as s:
        src = m.Source(name="hostile", kind="feed", url="https://example.org/feed")
        s.add(src)
        s.flush()
        sid = src.id
    ok = scrape_source(db, sid, fetcher=None, now=T0, body=rss("Ann"))
    assert ok.status == "ok"
    o = scrape_source(db, sid, fetcher=None, now=T0 + timedelta(hours=1), body=rss("A" * 80_000))
    assert o.status == "rejected" and o.reason is not None and "80000 characters" in o.reason
    with db() as s:
        src = s.get_one(m.Source, sid)
        assert src.health == "degraded" and src.last_error == o.reason

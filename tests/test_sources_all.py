"""Every shared fixture parses with its kind; other kinds refuse it; mutated bytes never raise
anything but ParseError."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import FIXTURES, fixture_file
from paperalerts.core.papers import Paper, normalize_arxiv_id
from paperalerts.core.sources import KINDS, parse
from paperalerts.errors import ParseError

# Every fixture file with its kind and the number of entries it holds (counted in the files:
# <item>/<entry> elements, JSON array length, DailyPapers items).
FIXTURE_COUNTS: dict[str, tuple[str, int]] = {
    "arxiv_api/arxiv_api_idlist-1601.00001_legacy-format_2020-09-04.xml": ("arxiv", 1),
    "arxiv_api/arxiv_api_query_all-AI_relevance_2026-02-19.xml": ("arxiv", 25),
    "arxiv_api/arxiv_api_query_all-AI_relevance_2026-02-20.xml": ("arxiv", 25),
    "arxiv_api/arxiv_api_query_all-retrieval_submittedDate-desc_2026-08-12.xml": ("arxiv", 15),
    "arxiv_api/arxiv_api_query_all-retrieval_submittedDate-desc_2026-08-14.xml": ("arxiv", 15),
    "arxiv_api/arxiv_api_query_all-transformer-AND-cat-cs.LG_2026-06-14.xml": ("arxiv", 5),
    "arxiv_api/arxiv_api_query_cat-cs.CL_2026-05-11.xml": ("arxiv", 2),
    "arxiv_api/arxiv_api_query_cat-cs.LG-OR-cat-cs.AI_2026-04-30.xml": ("arxiv", 20),
    "arxiv_rss/arxiv_rss_cs.AI_2026-04-27_trimmed3.xml": ("arxiv", 3),
    "arxiv_rss/arxiv_rss_cs.CL_2026-08-01_saturday_empty.xml": ("arxiv", 0),
    "arxiv_rss/arxiv_rss_cs.LG_2026-04-27_trimmed3.xml": ("arxiv", 3),
    "hf_api_daily_papers/hf_api_daily_papers_2024-03-12.json": ("hf-api", 9),
    "hf_api_daily_papers/hf_api_daily_papers_2024-03-13.json": ("hf-api", 8),
    "hf_api_daily_papers/hf_api_daily_papers_2024-03-15.json": ("hf-api", 14),
    "hf_api_daily_papers/hf_api_daily_papers_2026-05-08.json": ("hf-api", 37),
    "hf_papers_html/hf_paper_page_2509.24002_bs4_prettified.html": ("hf-papers", 1),
    "hf_papers_html/hf_papers_daily_2026-09-28.html": ("hf-papers", 28),
    "hf_papers_rss_thirdparty/hfpapers_feed_huangboming_2026-08-01.xml": ("feed", 38),
    "hf_papers_rss_thirdparty/hfpapers_feed_huangboming_2026-08-02.xml": ("feed", 38),
    "hf_papers_rss_thirdparty/hfpapers_feed_huangboming_2026-08-04.xml": ("feed", 27),
    "hf_papers_rss_thirdparty/hfpapers_feed_huangboming_2026-08-05.xml": ("feed", 40),
    "hf_papers_rss_thirdparty/takara_tldr_papers_feed_2026-04-30.xml": ("feed", 50),
}
URL = "https://fixtures.test/"


def test_every_fixture_file_is_listed() -> None:
    """A fixture added to the shared folder must get a kind and a count here."""
    if not FIXTURES.is_dir():
        pytest.skip(f"fixtures folder {FIXTURES} is missing")
    on_disk = {
        str(p.relative_to(FIXTURES))
        for p in FIXTURES.rglob("*")
        if p.is_file() and p.suffix != ".md"
    }
    assert on_disk == set(FIXTURE_COUNTS)


def _assert_clean(paper: Paper, kind: str) -> None:
    assert paper.source == kind
    assert normalize_arxiv_id(paper.id) == paper.id  # every fixture is about arXiv papers
    for text in (paper.title, paper.abstract, *paper.authors):
        assert text == " ".join(text.split()), f"not whitespace-normalised: {text!r}"
    assert paper.title and paper.abstract and "<p>" not in paper.abstract
    assert paper.published is not None and paper.published.utcoffset() is not None
    assert all(paper.authors) and paper.url.startswith("https://")
    json.dumps(paper.to_json(), ensure_ascii=False)  # the CLI's output shape serialises


@pytest.mark.parametrize(
    ("rel", "kind", "count"), [(r, k, c) for r, (k, c) in FIXTURE_COUNTS.items()]
)
def test_fixture_parses_with_its_kind(rel: str, kind: str, count: int) -> None:
    """Each fixture gives its number of papers, unique canonical ids, clean text, aware dates."""
    papers = parse(kind, fixture_file(rel).read_bytes(), URL)
    assert len(papers) == count
    assert len({p.id for p in papers}) == count
    for paper in papers:
        _assert_clean(paper, kind)


@pytest.mark.parametrize(("rel", "kind"), [(r, k) for r, (k, _) in FIXTURE_COUNTS.items()])
def test_other_kinds_refuse_the_fixture(rel: str, kind: str) -> None:
    """Fed to any other kind a fixture raises ParseError — except that `feed` reads arXiv's
    feeds too (they are RSS/Atom), to the same papers."""
    body = fixture_file(rel).read_bytes()
    for other in KINDS:
        if other == kind:
            continue
        if kind == "arxiv" and other == "feed":
            expected = [p.id for p in parse("arxiv", body, URL)]
            assert [p.id for p in parse("feed", body, URL)] == expected
            continue
        with pytest.raises(ParseError):
            parse(other, body, URL)


def test_unknown_kind_is_a_value_error_listing_kinds() -> None:
    """An unknown kind names the known ones."""
    with pytest.raises(ValueError, match="unknown source kind 'rss'; expected one of: hf-papers, "
                       "hf-api, arxiv, feed"):
        parse("rss", b"", URL)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("body", [b"", b"\x00\x01\x02\xff", b"   ", b"null", b"<html></html>"])
def test_garbage_raises_parse_error(kind: str, body: bytes) -> None:
    """Empty, binary or trivial bodies are ParseErrors for every kind (never [] or a crash)."""
    with pytest.raises(ParseError):
        parse(kind, body, URL)


# --- property: mutated fixtures -------------------------------------------------------------

FUZZ_FILES = [
    "hf_papers_html/hf_papers_daily_2026-09-28.html",
    "hf_papers_html/hf_paper_page_2509.24002_bs4_prettified.html",
    "hf_api_daily_papers/hf_api_daily_papers_2026-05-08.json",
    "arxiv_rss/arxiv_rss_cs.LG_2026-04-27_trimmed3.xml",
    "arxiv_api/arxiv_api_idlist-1601.00001_legacy-format_2020-09-04.xml",
    "hf_papers_rss_thirdparty/hfpapers_feed_huangboming_2026-08-04.xml",
]
JUNK = st.sampled_from(
    [b"<", b">", b'"', b"'", b"&", b"&quot;", b"&amp;#39;", b"]]>", b"<!--", b"\x00", b"\xff\xfe",
     b"{", b"}", b"[", b"\\", b"<item>", b"</entry>", b"data-props=", b"\xe2\x82"]
) | st.binary(min_size=1, max_size=16)


# One edit: (operation, position as a fraction of the length, junk to insert, bytes to delete).
EDITS = st.tuples(
    st.sampled_from(["truncate", "flip", "insert", "delete"]),
    st.floats(0, 1, allow_nan=False),
    JUNK,
    st.integers(1, 64),
)


def mutate(body: bytes, edits: list[tuple[str, float, bytes, int]]) -> bytes:
    """Apply the edits in order: truncate, flip one byte, insert junk, or delete a slice."""
    for op, where, junk, width in edits:
        pos = min(int(where * len(body)), max(len(body) - 1, 0))
        if op == "truncate":
            body = body[:pos]
        elif op == "flip" and body:
            body = body[:pos] + bytes([body[pos] ^ (width % 255 + 1)]) + body[pos + 1:]
        elif op == "insert":
            body = body[:pos] + junk + body[pos:]
        else:
            body = body[:pos] + body[pos + width:]
    return body


@pytest.mark.parametrize("rel", FUZZ_FILES)
def test_mutated_fixture_raises_only_parse_error(rel: str) -> None:
    """Damaged bytes give a list of Papers or a ParseError with a message — nothing else."""
    kind = FIXTURE_COUNTS[rel][0]
    original = fixture_file(rel).read_bytes()

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(edits=st.lists(EDITS, min_size=1, max_size=3))
    def check(edits: list[tuple[str, float, bytes, int]]) -> None:
        try:
            papers = parse(kind, mutate(original, edits), URL)
        except ParseError as e:
            assert str(e)
            return
        assert isinstance(papers, list) and all(isinstance(p, Paper) for p in papers)

    check()


# --- property: well-formed JSON of the wrong shape ------------------------------------------

ITEM_KEYS = st.sampled_from(
    ["paper", "id", "title", "summary", "authors", "name", "upvotes", "numComments",
     "publishedAt", "submittedOnDailyAt", "organization", "fullname", "githubRepo",
     "githubStars", "ai_keywords", "projectPage", "dailyPapers", "comments", "data", "hidden"]
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
    | st.sampled_from(["2401.00001", "2026-09-28T00:00:00.000Z", "-", "&amp;#39;", "<p>x</p>"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ITEM_KEYS, inner, max_size=6),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None)
@given(
    props=st.dictionaries(ITEM_KEYS, JSON_VALUES, max_size=6),
    items=st.lists(JSON_VALUES, max_size=3),
)
def test_json_of_any_shape_raises_only_parse_error(
    props: dict[str, object], items: list[object]
) -> None:
    """hf-api arrays and hf-papers props holding any JSON values: a list of Papers or ParseError."""
    import html

    page_props = {**props, "dailyPapers": items}
    page = (
        '<div data-target="DailyPapers" data-props="'
        + html.escape(json.dumps(page_props), quote=True) + '"></div>'
    ).encode()
    for kind, body in (("hf-api", json.dumps(items).encode()), ("hf-papers", page)):
        try:
            papers = parse(kind, body, URL)
        except ParseError as e:
            assert str(e)
            continue
        assert all(isinstance(p, Paper) and p.title and p.id for p in papers)

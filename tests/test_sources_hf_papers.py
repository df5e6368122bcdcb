"""The Hugging Face /papers HTML parser (kind ``hf-papers``) on the two saved real pages."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from conftest import fixture_file
from paperalerts.core.sources import hf_papers
from paperalerts.errors import ParseError

DAILY = "hf_papers_html/hf_papers_daily_2026-09-28.html"
SINGLE = "hf_papers_html/hf_paper_page_2509.24002_bs4_prettified.html"
URL = "https://huggingface.co/papers"


def _daily() -> bytes:
    return fixture_file(DAILY).read_bytes()


def _without_props(body: bytes) -> bytes:
    """The daily page with the DailyPapers data-props attribute cut out (cards remain)."""
    stripped, n = re.subn(rb'(data-target="DailyPapers") data-props="[^"]*"', rb"\1", body)
    assert n == 1
    return stripped


def test_daily_page_lists_its_28_papers_in_upvote_order() -> None:
    """All 28 dailyPapers items come out, in page order (highest upvotes first)."""
    papers = hf_papers.parse(_daily(), URL)
    assert len(papers) == 28
    assert [p.id for p in papers[:3]] == ["2609.31620", "2609.18703", "2609.31093"]
    assert papers[-1].id == "2604.02103"
    upvotes = [p.upvotes for p in papers]
    assert upvotes[0] == 110 and upvotes[-1] == 0
    assert upvotes == sorted(upvotes, key=lambda u: -(u or 0))


def test_daily_page_first_paper_fields() -> None:
    """The top paper's fields come from the item: paper.*, numComments, organization, githubRepo."""
    p = hf_papers.parse(_daily(), URL)[0]
    assert p.title == (
        "FuseReg: Regularizing Layer Fusion Mitigates the Reconstruction-Generation Gap in "
        "Representation Autoencoders"
    )
    assert p.source == "hf-papers"
    assert p.url == "https://huggingface.co/papers/2609.31620"
    assert p.pdf_url == "https://arxiv.org/pdf/2609.31620"
    assert p.code_url == "https://github.com/Hongyang-Du/FuseReg"
    assert p.organization == "USC Physical Superintelligence (PSI) Lab"
    assert p.upvotes == 110 and p.comments == 2
    assert len(p.authors) == 16
    assert p.authors[:3] == ("Hongyang Du", "Yunfei Xie", "Junjie Ye")
    assert p.authors[-1] == "Yue Wang"
    assert p.published == datetime(2026, 9, 25, tzinfo=UTC)
    assert p.abstract.startswith("Representation autoencoders (RAEs) reuse features from a ")
    assert p.extra["listing_date"] == "2026-09-28"
    assert p.extra["period_type"] == "day" and p.extra["trending"] is False
    assert p.extra["rank"] == 1


def test_daily_page_unescapes_double_escaped_author_names() -> None:
    """``D&amp;#39;Mello`` in the attribute becomes D'Mello, not ``D&#39;Mello``."""
    game_arena = next(p for p in hf_papers.parse(_daily(), URL) if p.id == "2609.31473")
    assert game_arena.title == "Game Arena: Strategic LLM Evaluation in Competitive Environments"
    assert "Christopher D'Mello" in game_arena.authors
    assert "Meghan O'Connell" in game_arena.authors
    assert len(game_arena.authors) == 62


def test_daily_page_paper_without_organization_or_repo() -> None:
    """Missing organization/githubRepo give None, not an error."""
    p = next(p for p in hf_papers.parse(_daily(), URL) if p.id == "2609.31394")
    assert p.organization is None and p.code_url is None
    assert p.title.startswith("InternW0-Δ: A World Action Model")
    assert p.upvotes == 17 and p.comments == 0


def test_single_paper_page_gives_one_paper() -> None:
    """The PaperContent props (single-quoted after prettify) give the one paper, title unwrapped."""
    [p] = hf_papers.parse(fixture_file(SINGLE).read_bytes(), URL + "/2509.24002")
    assert p.id == "2509.24002"
    assert p.title == "MCPMark: A Benchmark for Stress-Testing Realistic and Comprehensive MCP Use"
    assert p.upvotes == 118
    assert p.comments == 1  # two comments, one hidden as spam
    assert len(p.authors) == 15
    assert p.authors[0] == "Zijian Wu" and p.authors[-1] == "Michael Qizhe Shieh"
    assert p.code_url == "https://github.com/eval-sys/mcpmark"
    assert p.organization == "National University of Singapore"
    assert p.published == datetime(2025, 9, 28, 17, 53, 27, tzinfo=UTC)
    assert p.keywords[:3] == ("MCP", "LLMs", "general agents") and len(p.keywords) == 21
    assert "reaches only 52.56\\% pass@1" in p.abstract
    assert p.extra["listing_date"] == "2025-10-01"
    assert p.extra["project_page"] == "https://mcpmark.ai/"


def test_card_fallback_reads_the_visible_cards() -> None:
    """Without data-props the 28 rendered cards give the same ids, titles, upvotes, comments and
    organisations as the props did (a card shows no comment chip at 0: comments unknown)."""
    from_props = hf_papers.parse(_daily(), URL)
    from_cards = hf_papers.parse(_without_props(_daily()), URL)
    assert len(from_cards) == 28
    for a, b in zip(from_props, from_cards, strict=True):
        assert (b.id, b.title, b.upvotes, b.comments, b.organization) == (
            a.id, a.title, a.upvotes, a.comments or None, a.organization,
        )
        assert b.url == a.url and b.pdf_url == a.pdf_url
        assert b.extra["from_cards"] is True
    assert from_cards[-1].upvotes == 0  # the card shows "-"
    assert from_cards[0].authors == ()  # cards carry no author list


def test_page_with_neither_props_nor_cards_raises() -> None:
    """A page without props and without cards is not a papers page: ParseError, not []."""
    body = re.sub(rb"<article\b", b"<section", _without_props(_daily()))
    with pytest.raises(ParseError, match="no DailyPapers/PaperContent data-props"):
        hf_papers.parse(body, URL)


def test_other_html_page_raises() -> None:
    """An unrelated HTML page raises ParseError naming the URL."""
    with pytest.raises(ParseError, match=r"hf-papers https://example\.org/"):
        hf_papers.parse(b"<html><body><p>Hello</p></body></html>", "https://example.org/")


def test_broken_props_json_raises_with_position() -> None:
    """Props that are not JSON raise ParseError saying which component and where."""
    body = _daily().replace(b"&quot;dailyPapers&quot;:[", b"&quot;dailyPapers&quot;:[,", 1)
    with pytest.raises(ParseError, match=r"DailyPapers data-props is not valid JSON: .* at"):
        hf_papers.parse(body, URL)


def test_empty_daily_list_is_an_empty_result() -> None:
    """A DailyPapers component with an explicitly empty list is a day without papers: []."""
    body = (b'<div class="SVELTE_HYDRATER contents" data-target="DailyPapers" data-props="'
            b'{&quot;dailyPapers&quot;:[],&quot;dateString&quot;:&quot;2026-09-29&quot;}"></div>')
    assert hf_papers.parse(body, URL) == []


@pytest.mark.parametrize(
    "tag",
    [
        # props before target, single-quoted, raw '<' inside the value (browser serialisation)
        b"""<div data-props='{"dailyPapers":[{"paper":{"id":"2401.00001"},"""
        b""""title":"if p<q then r>s"}]}' data-target="DailyPapers">""",
        # unquoted target, extra attributes, upper-case attribute name
        b"""<div CLASS=x data-target=DailyPapers Data-Props="{&quot;dailyPapers&quot;:[{&quot;"""
        b"""paper&quot;:{&quot;id&quot;:&quot;2401.00001&quot;},&quot;title&quot;:&quot;if p"""
        b"""&lt;q then r&gt;s&quot;}]}" >""",
    ],
)
def test_scan_follows_attribute_order_and_quoting(tag: bytes) -> None:
    """The byte scan reads the props whatever the attribute order, quoting or case."""
    [p] = hf_papers.parse(b"<html><body>" + tag + b"</div></body></html>", URL)
    assert p.id == "2401.00001"
    assert p.title == "if p<q then r>s"

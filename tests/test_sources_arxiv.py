"""The arXiv parser (kind ``arxiv``): rss.arxiv.org RSS, API Atom (current and legacy), and the
quiet-day helper."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from conftest import fixture_file
from paperalerts.core.papers import Paper
from paperalerts.core.sources import arxiv
from paperalerts.errors import ParseError

LG = "arxiv_rss/arxiv_rss_cs.LG_2026-04-27_trimmed3.xml"
AI = "arxiv_rss/arxiv_rss_cs.AI_2026-04-27_trimmed3.xml"
EMPTY = "arxiv_rss/arxiv_rss_cs.CL_2026-08-01_saturday_empty.xml"
LEGACY = "arxiv_api/arxiv_api_idlist-1601.00001_legacy-format_2020-09-04.xml"
RETRIEVAL = "arxiv_api/arxiv_api_query_all-retrieval_submittedDate-desc_2026-08-12.xml"
EDT = timezone(timedelta(hours=-4))


def _parse(rel: str) -> list[Paper]:
    return arxiv.parse(fixture_file(rel).read_bytes(), "https://rss.arxiv.org/rss/x")


def test_rss_item_fields() -> None:
    """RSS: id from the guid without version, abstract after "Abstract:", dc:creator split,
    announce type, categories and the pubDate with its -04:00 offset."""
    papers = _parse(LG)
    assert [p.id for p in papers] == ["2604.21952", "2604.21953", "2604.21956"]
    p = papers[0]
    assert p.source == "arxiv"
    assert p.title == (
        "Focus Session: Hardware and Software Techniques for Accelerating Multimodal Foundation "
        "Models"
    )
    assert p.authors == (
        "Muhammad Shafique", "Abdul Basit", "Muhammad Abdullah Hanif", "Alberto Marchisio",
        "Rachmad Vidya Wicaksana Putra", "Minghao Shao",
    )
    assert p.abstract.startswith("This work presents a multi-layered methodology for efficiently")
    assert p.abstract.endswith("extensions toward energy-efficient spiking-MFMs.")
    assert "visual resolution & stride" in p.abstract
    assert "Announce Type" not in p.abstract
    assert p.published == datetime(2026, 4, 27, tzinfo=EDT)
    assert p.published is not None and p.published.utcoffset() == timedelta(hours=-4)
    assert p.url == "https://arxiv.org/abs/2604.21952"
    assert p.pdf_url == "https://arxiv.org/pdf/2604.21952"
    assert p.extra["announce_type"] == "new"
    assert p.extra["categories"] == ["cs.LG", "cs.AI", "cs.AR", "cs.NE", "cs.RO"]
    assert p.extra["primary_category"] == "cs.LG"
    assert p.extra["version"] == 1
    assert papers[1].authors == ("Blessed Madukoma", "Prasenjit Mitra")
    assert papers[1].abstract.startswith("Anti-doping programs rely on biological testing")


def test_rss_cs_ai_items() -> None:
    """The cs.AI feed's three items, with long dc:creator lists split into names."""
    papers = _parse(AI)
    assert [p.id for p in papers] == ["2604.21935", "2604.21936", "2604.21937"]
    assert papers[0].title == (
        "Math Takes Two: A test for emergent mathematical reasoning in communication"
    )
    assert papers[0].authors == ("Michael Cooper", "Samuel Cooper")
    assert len(papers[1].authors) == 18
    assert papers[1].authors[-1] == "Bennett A. Landman"
    assert papers[2].authors[0] == "Lisheng Zhang" and len(papers[2].authors) == 17


def test_weekend_rss_is_an_empty_list() -> None:
    """The real Saturday feed (a channel without items) parses to []."""
    assert _parse(EMPTY) == []


def test_api_current_format_entry() -> None:
    """API Atom: versioned http id -> canonical id, one author per element, primary category."""
    papers = _parse(RETRIEVAL)
    assert len(papers) == 15
    p = papers[0]
    assert p.id == "2608.11200"
    assert p.title.startswith("ConVAWG: A Retrieval-Grounded Framework for Controlled Synthetic")
    assert p.authors == (
        "Chen Lyu", "Xingwei Tan", "Simon Cullen", "Shelley Wilson", "Lois Arthurs",
        "Arshad Jhumka", "Gabriele Pergola",
    )
    assert p.published == datetime(2026, 8, 11, 17, 57, 34, tzinfo=UTC)
    assert p.extra["categories"] == ["cs.CL", "cs.AI", "cs.LG"]
    assert p.extra["primary_category"] == "cs.CL"
    assert p.abstract.startswith("Synthetic dialogue generation offers a way to study")
    assert "announce_type" not in p.extra


def test_api_legacy_format_entry() -> None:
    """Legacy API output: hard-wrapped title/summary joined, DOI and journal ref kept."""
    [p] = _parse(LEGACY)
    assert p.id == "1601.00001"
    assert p.title == (
        "Inelastic effects in molecular transport junctions: The probe technique at high bias"
    )
    assert p.authors == ("Michael Kilgour", "Dvira Segal")
    assert p.abstract.startswith(
        'We extend the Landauer-B\\"uttiker probe formalism for conductances to the high bias'
    )
    assert p.abstract.endswith("on molecular electronic transport far-from-equilibrium.")
    assert p.published == datetime(2015, 12, 26, 21, 19, 45, tzinfo=UTC)
    assert p.extra["doi"] == "10.1063/1.4944470"
    assert p.extra["journal_ref"] == "J. Chem. Phys. 144, 124107 (2016)"
    assert p.extra["primary_category"] == "cond-mat.mes-hall"


def test_relevance_pair_is_identical() -> None:
    """The two all:AI snapshots a day apart list the same 25 papers (a nothing-new pair)."""
    a = _parse("arxiv_api/arxiv_api_query_all-AI_relevance_2026-02-19.xml")
    b = _parse("arxiv_api/arxiv_api_query_all-AI_relevance_2026-02-20.xml")
    assert len(a) == 25 and [p.id for p in a] == [p.id for p in b]
    assert a[0].id == "2501.02842" and a[0].title == "Foundations of GenIR"


def test_api_error_entry_raises() -> None:
    """The API's error answer (one entry with an api/errors id) is a ParseError with its text."""
    body = b"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><id>http://arxiv.org/api/x</id><title>ArXiv Query</title>
<entry><id>http://arxiv.org/api/errors#incorrect_id_format_for_1234</id><title>Error</title>
<summary>incorrect id format for 1234</summary><updated>2026-01-01T00:00:00-05:00</updated>
</entry></feed>"""
    with pytest.raises(ParseError, match="arXiv API answered an error: incorrect id format"):
        arxiv.parse(body, "https://export.arxiv.org/api/query?id_list=1234")


def test_truncated_feed_raises_with_position() -> None:
    """arXiv always serves well-formed XML, so a truncated body is an error, not fewer papers."""
    body = fixture_file(LG).read_bytes()[:4000]
    with pytest.raises(ParseError, match=r"malformed feed: line \d+ column \d+"):
        arxiv.parse(body, "https://rss.arxiv.org/rss/cs.LG")


def test_third_party_feed_is_not_an_arxiv_feed() -> None:
    """A feed that only links arXiv papers (Takara) is kind `feed`, not `arxiv`."""
    body = fixture_file("hf_papers_rss_thirdparty/takara_tldr_papers_feed_2026-04-30.xml")
    with pytest.raises(ParseError, match="not an arXiv feed"):
        arxiv.parse(body.read_bytes(), "https://papers.takara.ai/api/feed")


@pytest.mark.parametrize(
    ("now", "quiet"),
    [
        (datetime(2026, 8, 1, 12, 0, tzinfo=UTC), True),  # Saturday
        (datetime(2026, 8, 2, 23, 0, tzinfo=UTC), True),  # Sunday
        (datetime(2026, 8, 3, 3, 0, tzinfo=UTC), True),  # still Sunday 23:00 in New York
        (datetime(2026, 8, 3, 12, 0, tzinfo=UTC), False),  # Monday: empty means trouble
        (datetime(2026, 7, 31, 23, 0, tzinfo=EDT), False),  # Friday evening in New York
    ],
)
def test_is_quiet_day_reads_skip_days(now: datetime, quiet: bool) -> None:
    """An empty feed is quiet only on its <skipDays> (Saturday, Sunday), on arXiv's clock."""
    assert arxiv.is_quiet_day(fixture_file(EMPTY).read_bytes(), now) is quiet


def test_is_quiet_day_false_when_feed_has_items() -> None:
    """A feed with items is never a quiet day, whatever the day."""
    saturday = datetime(2026, 8, 1, 12, 0, tzinfo=UTC)
    assert arxiv.is_quiet_day(fixture_file(LG).read_bytes(), saturday) is False


def test_is_quiet_day_rejects_naive_now_and_non_rss() -> None:
    """A naive `now` is a programming error; a non-RSS body is a ParseError."""
    body = fixture_file(EMPTY).read_bytes()
    with pytest.raises(ValueError, match="timezone-aware"):
        arxiv.is_quiet_day(body, datetime(2026, 8, 1, 12, 0))
    saturday = datetime(2026, 8, 1, 12, 0, tzinfo=UTC)
    with pytest.raises(ParseError, match="not an RSS feed"):
        arxiv.is_quiet_day(fixture_file(LEGACY).read_bytes(), saturday)
    with pytest.raises(ParseError, match="not well-formed XML"):
        arxiv.is_quiet_day(b"[]", saturday)


def test_rss_announce_type_replace_cross_is_kept() -> None:
    """Other announce types (here replace-cross, with a v2 guid) are kept in extra."""
    body = (
        fixture_file(LG).read_bytes()
        .replace(b"<arxiv:announce_type>new<", b"<arxiv:announce_type>replace-cross<", 1)
        .replace(b"arXiv:2604.21952v1 Announce Type: new", b"arXiv:2604.21952v2 Announce "
                 b"Type: replace-cross", 1)
        .replace(b"oai:arXiv.org:2604.21952v1", b"oai:arXiv.org:2604.21952v2", 1)
    )
    p = arxiv.parse(body, "https://rss.arxiv.org/rss/cs.LG")[0]
    assert p.id == "2604.21952"
    assert p.extra["announce_type"] == "replace-cross"
    assert p.extra["version"] == 2
    assert p.abstract.startswith("This work presents")

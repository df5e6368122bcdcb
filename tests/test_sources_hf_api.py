"""The /api/daily_papers JSON parser (kind ``hf-api``), 2024 and 2026 item shapes."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from conftest import fixture_file
from paperalerts.core.papers import Paper
from paperalerts.core.sources import hf_api
from paperalerts.errors import ParseError

URL = "https://huggingface.co/api/daily_papers"


def _parse(name: str) -> list[Paper]:
    return hf_api.parse(fixture_file(f"hf_api_daily_papers/{name}").read_bytes(), URL)


def test_2024_shape_first_item() -> None:
    """2024 items: paper.* fields, numComments, and the top-level publishedAt as listing date."""
    papers = _parse("hf_api_daily_papers_2024-03-12.json")
    assert len(papers) == 9
    p = papers[0]
    assert p.id == "2403.06634"
    assert p.source == "hf-api"
    assert p.title == "Stealing Part of a Production Language Model"
    assert p.authors[:3] == ("Nicholas Carlini", "Daniel Paleka", "Krishnamurthy Dj Dvijotham")
    assert len(p.authors) == 13
    assert p.upvotes == 63 and p.comments == 3
    assert p.published == datetime(2024, 3, 11, 11, 46, 12, tzinfo=UTC)
    assert p.extra["listing_date"] == "2024-03-12"
    assert p.organization is None and p.code_url is None and p.keywords == ()
    # summaries are hard-wrapped in 2024; the paper text has one space where the wrap was
    assert p.abstract.startswith(
        "We introduce the first model-stealing attack that extracts precise, nontrivial "
    )
    assert "\n" not in p.abstract


def test_2024_shape_prefers_the_cleaned_title() -> None:
    """The top-level one-line title wins over paper.title's arXiv hard wrap."""
    p = _parse("hf_api_daily_papers_2024-03-12.json")[1]
    assert p.id == "2403.06504"
    assert p.title == (
        "Adding NVMe SSDs to Enable and Accelerate 100B Model Fine-tuning on a Single GPU"
    )
    assert p.upvotes == 38


def test_2026_shape_first_item() -> None:
    """2026 items add organization, githubRepo, ai_keywords and submittedOnDailyAt."""
    papers = _parse("hf_api_daily_papers_2026-05-08.json")
    assert len(papers) == 37
    p = papers[0]
    assert p.id == "2605.05242"
    assert p.title == (
        "Beyond Semantic Similarity: Rethinking Retrieval for Agentic Search via Direct Corpus "
        "Interaction"
    )
    assert p.authors[:2] == ("Zhuofeng Li", "Haoxiang Zhang") and len(p.authors) == 19
    assert p.upvotes == 86 and p.comments == 3
    assert p.organization == "TIGER-Lab"
    assert p.code_url == "https://github.com/DCI-Agent/DCI-Agent-Lite"
    assert p.keywords[:3] == ("retrieval systems", "lexical retrieval", "semantic retrieval")
    assert p.published == datetime(2026, 5, 3, tzinfo=UTC)
    assert p.extra["listing_date"] == "2026-05-08"
    assert p.extra["submitted_on_daily_at"] == "2026-05-08T10:01:31.399000+00:00"
    assert p.extra["github_stars"] == 101
    assert p.url == "https://huggingface.co/papers/2605.05242"
    assert p.pdf_url == "https://arxiv.org/pdf/2605.05242"


def test_2026_second_item_organization_fullname() -> None:
    """organization.fullname is used (ByteDance Seed), and a paper without githubRepo has None."""
    p = _parse("hf_api_daily_papers_2026-05-08.json")[1]
    assert p.id == "2605.06548"
    assert p.title == "Continuous Latent Diffusion Language Model"
    assert p.organization == "ByteDance Seed"
    assert p.code_url is None
    assert (p.upvotes, p.comments) == (68, 6)


def test_consecutive_2024_days_do_not_overlap() -> None:
    """12, 13 and 15 March 2024 are separate lists (fixtures README)."""
    days = [
        {p.id for p in _parse(f"hf_api_daily_papers_2024-03-{d}.json")} for d in ("12", "13", "15")
    ]
    assert [len(d) for d in days] == [9, 8, 14]
    assert not (days[0] & days[1]) and not (days[1] & days[2])


def test_empty_array_is_an_empty_day() -> None:
    """``[]`` is a well-formed empty list."""
    assert hf_api.parse(b"[]", URL) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<!DOCTYPE html><html>", r"invalid JSON at line 1 column 1"),
        (b'{"error": "Invalid date"}', r"API answered an error: Invalid date"),
        (b'{"papers": []}', r"expected a JSON array of papers, got dict"),
        (b"[1]", r"item 0: expected an object, got int"),
        (json.dumps([{"paper": {"title": "x"}}]).encode(), r"item 0: no paper.id"),
        (b"\xff\xfe\x00garbage", r"not (UTF-8 )?.*JSON|invalid JSON"),
    ],
)
def test_bad_bodies_raise_parse_error(body: bytes, message: str) -> None:
    """Anything but an array of items raises ParseError saying what is wrong, and where."""
    with pytest.raises(ParseError, match=message) as info:
        hf_api.parse(body, URL)
    assert URL in str(info.value)

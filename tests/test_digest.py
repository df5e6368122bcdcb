"""Building a digest from real papers: order, grouping, dedup, cap, snippets, links, freshness."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import fixture_file
from mail_fixtures import HF_DAY_2024_03_12, HF_DAY_2026_05_08, NOW, hf_papers, match, sample_digest
from paperalerts.core.digest import (
    SNIPPET_WORDS,
    SNIPPET_WORDS_BEFORE,
    TITLE_MAX,
    MatchedItem,
    SourceStatus,
    SubscriberInfo,
    build_digest,
    freshness_line,
    highlight,
)
from paperalerts.core.papers import Paper

ADA = SubscriberInfo("ada@example.org", "Ada", "daily", "UTC")
VIEW = "https://alerts.example.org/v/T"


def papers_2024() -> dict[str, Paper]:
    return {p.id: p for p in hf_papers(fixture_file(HF_DAY_2024_03_12))}


def ids(group: object) -> list[str]:
    return [i.paper_id for i in group.items]  # type: ignore[attr-defined]


def test_groups_by_rule_then_upvotes() -> None:
    """Groups come in rule-name order; inside one, papers by upvotes (fixture counts 63, 38...)."""
    d = sample_digest(fixture_file(HF_DAY_2024_03_12))
    assert [g.rule_name for g in d.groups] == ["Diffusion", "Language models"]
    assert ids(d.groups[0]) == ["2403.06738", "2403.06098", "2403.06807"]  # 17, 10, 9 upvotes
    assert ids(d.groups[1]) == ["2403.06634", "2403.06504", "2403.06764", "2403.05812"]
    assert [i.upvotes for i in d.groups[1].items] == [63, 38, 16, 9]
    assert d.total_papers == 7 and d.more_count == 0 and d.kind == "digest"


def test_equal_upvotes_newest_first_and_unknown_last() -> None:
    """Ties on upvotes go to the newer paper; papers without upvotes come after those with."""
    p = papers_2024()["2403.06807"]  # 9 upvotes, published 2024-03-11
    older = replace(p, id="2403.00001", published=p.published - timedelta(days=2))  # type: ignore[operator]
    unknown = replace(p, id="2403.00002", upvotes=None)
    items = [match(x, 1, "r", ["consistency"], NOW) for x in (older, unknown, p)]
    d = build_digest(ADA, items, [], now=NOW, online_url=VIEW)
    assert ids(d.groups[0]) == ["2403.06807", "2403.00001", "2403.00002"]


def test_paper_matched_by_two_rules_appears_once() -> None:
    """2605.06548 mentions both diffusion and language: shown once, under its first rule,
    listing both rules (without terms their names already say)."""
    d = sample_digest(fixture_file(HF_DAY_2026_05_08), now=datetime(2026, 5, 8, 8, tzinfo=UTC))
    shown = [i for g in d.groups for i in g.items]
    both = [i for i in shown if i.paper_id == "2605.06548"]
    assert len(both) == 1
    assert both[0] in d.groups[0].items and d.groups[0].rule_name == "Diffusion"
    assert [(r.name, r.terms) for r in both[0].rules] == [
        ("Diffusion", ()),
        ("Language models", ()),
    ]
    assert len({i.paper_id for i in shown}) == len(shown) == d.total_papers


def test_cap_counts_the_rest() -> None:
    """With max_items=5 the first five ranked papers are shown and the rest counted as more."""
    full = sample_digest(fixture_file(HF_DAY_2026_05_08), now=datetime(2026, 5, 8, tzinfo=UTC))
    capped = sample_digest(
        fixture_file(HF_DAY_2026_05_08), now=datetime(2026, 5, 8, tzinfo=UTC), max_items=5
    )
    flat = [i.paper_id for g in full.groups for i in g.items]
    assert [i.paper_id for g in capped.groups for i in g.items] == flat[:5]
    assert capped.shown_papers == 5
    assert capped.more_count == full.total_papers - 5 == capped.total_papers - 5
    assert full.trimmed(5) == capped


def test_snippet_around_first_hit() -> None:
    """V3D's abstract first says "diffusion" after ~30 words: the snippet starts shortly before
    it with "…", holds at most 60 words, and marks exactly the occurrences of the term."""
    p = papers_2024()["2403.06738"]
    d = build_digest(
        ADA, [match(p, 1, "Diffusion", ["diffusion"], NOW)], [], now=NOW, online_url=VIEW
    )
    seg = d.groups[0].items[0].snippet
    text = "".join(s.text for s in seg)
    assert text.startswith("… ") and text.endswith(" …")
    assert len(text.split()) <= SNIPPET_WORDS + 2
    assert text[2:-2] in p.abstract
    marked = [s.text for s in seg if s.highlight]
    assert marked and all(m.lower().startswith("diffusion") for m in marked)
    words = p.abstract.split()
    at = next(n for n, w in enumerate(words) if w.lower().startswith("diffusion"))
    assert at > SNIPPET_WORDS_BEFORE
    assert text[2:].split()[: SNIPPET_WORDS_BEFORE + 1] == words[at - SNIPPET_WORDS_BEFORE : at + 1]


def test_snippet_without_abstract_hit_is_the_start() -> None:
    """A paper matched on its title only shows the start of its abstract, title highlighted."""
    p = papers_2024()["2403.06807"]  # "Multistep Consistency Models"
    expl = {
        "terms": ["multistep"],
        "hits": [{"field": "title", "term": "multistep", "start": 0, "end": 9}],
    }
    d = build_digest(ADA, [MatchedItem(p, 1, "r", expl, NOW)], [], now=NOW, online_url=VIEW)
    item = d.groups[0].items[0]
    assert item.title[0].text == "Multistep" and item.title[0].highlight
    assert item.snippet[0].text.startswith("Diffusion models are relatively easy")
    assert not any(s.highlight for s in item.snippet)


def test_hits_outside_the_text_are_ignored_and_malformed_ones_named() -> None:
    """Offsets past the (since changed) text are skipped; a malformed explanation is an error
    naming the match and paper."""
    p = papers_2024()["2403.06807"]
    stale = {
        "terms": ["x"],
        "hits": [{"field": "abstract", "term": "x", "start": 5000, "end": 5004}],
    }
    d = build_digest(ADA, [MatchedItem(p, 1, "r", stale, NOW)], [], now=NOW, online_url=VIEW)
    assert not any(s.highlight for s in d.groups[0].items[0].snippet)
    bad = {"terms": ["x"], "hits": [{"field": "abstract", "start": "0"}]}
    with pytest.raises(ValueError, match=r"match 0 \(paper 2403.06807, rule 1\): hits\[0\]"):
        build_digest(ADA, [MatchedItem(p, 1, "r", bad, NOW)], [], now=NOW, online_url=VIEW)


def test_authors_org_and_links() -> None:
    """Six authors then "et al."; organization, counts, date and the HF/arXiv/PDF/code links
    come from the paper (2605.05242: 19 authors, TIGER-Lab, GitHub repo)."""
    papers = {p.id: p for p in hf_papers(fixture_file(HF_DAY_2026_05_08))}
    p = papers["2605.05242"]
    d = build_digest(ADA, [match(p, 1, "r", ["retrieval"], NOW)], [], now=NOW, online_url=VIEW)
    item = d.groups[0].items[0]
    assert item.authors == ", ".join(p.authors[:6]) + " et al."
    assert (item.organization, item.upvotes, item.comments) == ("TIGER-Lab", 86, 3)
    assert item.date is not None and item.date.isoformat() == "2026-05-03"
    assert [(link.label, link.url) for link in item.links] == [
        ("Hugging Face", "https://huggingface.co/papers/2605.05242"),
        ("arXiv", "https://arxiv.org/abs/2605.05242"),
        ("PDF", "https://arxiv.org/pdf/2605.05242"),
        ("Code", "https://github.com/DCI-Agent/DCI-Agent-Lite"),
    ]
    assert item.url == "https://huggingface.co/papers/2605.05242"


def test_unsafe_urls_never_become_links() -> None:
    """javascript: and data: URLs from a source are dropped; the title links to the HF page."""
    p = replace(
        papers_2024()["2403.06634"],
        url="javascript:alert(1)",
        code_url="data:text/html,x",
        pdf_url="javascript:x",
    )
    d = build_digest(ADA, [match(p, 1, "r", ["model"], NOW)], [], now=NOW, online_url=VIEW)
    item = d.groups[0].items[0]
    urls = [item.url] + [link.url for link in item.links]
    assert all(u.startswith("https://") for u in urls)
    assert item.url == "https://huggingface.co/papers/2403.06634"


def test_long_title_is_clipped_keeping_highlights() -> None:
    """A title past TITLE_MAX characters is cut at a word with "…", its early hits still marked."""
    p = papers_2024()["2403.06634"]
    long = replace(p, title=p.title + " " + "very " * 100)
    d = build_digest(ADA, [match(long, 1, "r", ["language"], NOW)], [], now=NOW, online_url=VIEW)
    title = d.groups[0].items[0].title
    text = "".join(s.text for s in title)
    assert len(text) <= TITLE_MAX and text.endswith("…")
    assert [s.text for s in title if s.highlight] == ["Language"]


def test_freshness_lines() -> None:
    """One line per source, by display name: checked with how many of this email's papers it
    listed (never the last scrape's "new" count), quiet weekend day, failing since (local
    time)."""
    sat = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    ok = SourceStatus("hf-daily", "hf-api", "ok", sat - timedelta(minutes=2), None, 0,
                      display_name="HF daily papers")  # fmt: skip
    quiet = SourceStatus("arXiv cs.LG", "arxiv", "ok", sat, None, 0, quiet_day=True)
    failing = SourceStatus(
        "HF trending", "hf-papers", "failing", sat - timedelta(days=1), sat - timedelta(hours=2), 0
    )
    yesterday = replace(failing, failing_since=sat - timedelta(hours=26))
    assert freshness_line(ok, sat, listed=4).text == (
        "HF daily papers: checked 07:58 UTC, 4 papers in this email"
    )
    assert freshness_line(ok, sat, "Europe/Berlin", 1).text == (
        "HF daily papers: checked 08:58 CET, 1 paper in this email"
    )
    assert freshness_line(quiet, sat, listed=2).text == (
        "arXiv cs.LG: no announcement today (weekend), 2 earlier papers in this email"
    )
    assert freshness_line(quiet, sat).text == "arXiv cs.LG: no announcement today (weekend)"
    assert freshness_line(quiet, sat - timedelta(days=2)).text == (
        "arXiv cs.LG: no announcement today"
    )
    assert freshness_line(failing, sat).text == (
        "HF trending: failing since 06:00 UTC; what you missed will follow"
    )
    assert freshness_line(yesterday, sat).text == (
        "HF trending: failing since Fri 27 Nov 06:00 UTC; what you missed will follow"
    )


def test_instant_subscribers_get_alerts_and_empty_digests_are_empty() -> None:
    """Instant subscribers' digests are alerts; no matches give an empty, valid digest."""
    alert = build_digest(replace(ADA, frequency="instant"), [], [], now=NOW, online_url=VIEW)
    assert alert.kind == "alert" and alert.groups == () and alert.total_papers == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"now": datetime(2024, 1, 1)}, "timezone-aware"), ({"max_items": 0}, "max_items")],
)
def test_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    """A naive now or a cap below one is refused."""
    args: dict[str, object] = {"now": NOW, "online_url": VIEW, **kwargs}
    with pytest.raises(ValueError, match=message):
        build_digest(ADA, [], [], **args)  # type: ignore[arg-type]


@given(
    text=st.text(min_size=0, max_size=40),
    spans=st.lists(st.tuples(st.integers(-5, 45), st.integers(-5, 45)), max_size=6),
    lo=st.integers(0, 40),
)
def test_highlight_partitions_the_window(text: str, spans: list[tuple[int, int]], lo: int) -> None:
    """Highlight segments always spell the window exactly, and only text inside a valid span is
    marked."""
    lo = min(lo, len(text))
    segs = highlight(text, spans, lo, len(text))
    assert "".join(s.text for s in segs) == text[lo:]
    pos = lo
    for s in segs:
        if s.highlight:
            valid = [(a, b) for a, b in spans if 0 <= a < b <= len(text)]
            assert all(any(a <= k < b for a, b in valid) for k in range(pos, pos + len(s.text)))
        pos += len(s.text)


def test_the_digest_tests_run_on_the_recorded_papers(fixtures_dir: Path) -> None:
    """`hf_papers` loads the recorded 2024-03-12 day as the API served it, in its upvote order,
    with titles, authors and counts: the digests above are built from real values."""
    papers = hf_papers(fixtures_dir / HF_DAY_2024_03_12)
    assert [(p.id, p.upvotes) for p in papers[:3]] == [
        ("2403.06634", 63), ("2403.06504", 38), ("2403.06738", 17)
    ]
    top = papers[0]
    assert top.title == "Stealing Part of a Production Language Model"
    assert top.authors[:2] == ("Nicholas Carlini", "Daniel Paleka")
    assert top.abstract.startswith("We introduce the first model-stealing attack")

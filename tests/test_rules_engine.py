"""The matcher's contract beyond truth values: explanations, offsets, ordering, keys, inputs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conftest import fixture_file
from paperalerts.core.papers import Paper
from paperalerts.core.rules import (
    AUTHOR_SEPARATOR,
    Hit,
    compile_rules,
    explanation_json,
    match_brute_force,
    parse,
    term_frequencies,
)
from paperalerts.core.rules.text import normalise, words


def fixture_papers(rel: str = "hf_api_daily_papers/hf_api_daily_papers_2024-03-12.json",
                   ) -> list[Paper]:
    """Papers read straight from an HF API fixture (independent of the source parsers)."""
    items: list[dict[str, Any]] = json.loads(fixture_file(rel).read_text(encoding="utf-8"))
    return [
        Paper(id=it["paper"]["id"], title=it["title"], source="hf-api",
              abstract=it["paper"]["summary"],
              authors=tuple(a["name"] for a in it["paper"]["authors"]),
              upvotes=it["paper"]["upvotes"], comments=it["numComments"])
        for it in items
    ]


def by_id(papers: list[Paper], pid: str) -> Paper:
    return next(p for p in papers if p.id == pid)


def field_text(p: Paper, field: str) -> str:
    """The display text hit offsets refer to (rules/analysed.py docstring)."""
    return {"title": p.title, "abstract": p.abstract, "org": p.organization or "",
            "author": AUTHOR_SEPARATOR.join(p.authors), "id": p.id}[field]


def test_hits_point_at_the_words_in_the_original_text() -> None:
    """Every hit's offsets cut the matched words out of the original (un-normalised) field."""
    papers = fixture_papers()
    rules = [(1, '"language model"'), (2, "title:stealing"), (3, "author:tramer"),
             (4, "diffus* video")]
    found = compile_rules(rules).match(papers)
    assert found, "the fixture has papers for these rules"
    for m in found:
        p = by_id(papers, m.paper_id)
        for h in m.hits:
            cut = field_text(p, h.field)[h.start:h.end]
            term = h.term.split(":", 1)[-1].strip('"*')
            if h.term.endswith("*"):
                assert normalise(cut).startswith(term), (h, cut)
            else:
                assert [w[:4] for w in words(cut)] == [w[:4] for w in words(term)], (h, cut)


def test_explanation_of_a_real_paper() -> None:
    """2403.06634 ("Stealing Part of a Production Language Model", by Florian Tramèr among
    others): terms in rule order, hits by term then field then offset, in the stored shape."""
    p = by_id(fixture_papers(), "2403.06634")
    (m,) = compile_rules([(7, 'title:stealing "language model" author:Tramer')]).match([p])
    assert (m.paper_id, m.rule) == ("2403.06634", 7)
    assert m.terms == ("title:stealing", '"language model"', "author:Tramer")
    title_lm = p.title.index("Language Model")
    tramer = AUTHOR_SEPARATOR.join(p.authors).index("Florian Tramèr") + len("Florian ")
    assert m.hits[0] == Hit("title", "title:stealing", 0, len("Stealing"))
    assert m.hits[1] == Hit("title", '"language model"', title_lm, title_lm + len("Language Model"))
    assert [h.field for h in m.hits[2:-1]] == ["abstract"] * (len(m.hits) - 3)
    assert m.hits[-1] == Hit("author", "author:Tramer", tramer, tramer + len("Tramèr"))
    doc = explanation_json(m)
    assert set(doc) == {"terms", "hits"}
    assert doc["terms"] == list(m.terms)
    assert doc["hits"][0] == {"field": "title", "term": "title:stealing", "start": 0, "end": 8}
    assert json.loads(json.dumps(doc)) == doc


def test_explanations_name_only_the_terms_that_made_the_match() -> None:
    """Negated terms and false OR branches are never reasons; a numeric filter is a term with no
    hit; a match made by a negation alone has no terms."""
    p = Paper(id="x1", title="Video diffusion", source="hf-api", upvotes=30)
    (m,) = compile_rules([(1, "(video OR audio) -speech upvotes:>=20")]).match([p])
    assert m.terms == ("video", "upvotes:>=20")
    assert [(h.field, h.term, h.start, h.end) for h in m.hits] == [("title", "video", 0, 5)]
    (m,) = compile_rules([(1, "graphs OR NOT speech")]).match([p])
    assert (m.terms, m.hits) == ((), ())


def test_a_term_written_twice_is_reported_once() -> None:
    """Terms are distinct, and so are their hits."""
    p = Paper(id="x1", title="video video", source="hf-api")
    (m,) = compile_rules([(1, "video OR (video title:video)")]).match([p])
    assert m.terms == ("video", "title:video")
    assert [h.term for h in m.hits] == ["video", "video", "title:video", "title:video"]


def test_matches_are_sorted_by_paper_then_rule() -> None:
    """Order is by paper id, then rule key (ints before strings), whatever the input order."""
    papers = fixture_papers()
    rules: list[tuple[int | str, str]] = [("b", "model"), (10, "model"), (2, "model"),
                                          ("a", "model")]
    found = compile_rules(rules).match(reversed(papers))
    pairs = [(m.paper_id, m.rule) for m in found]
    ids = sorted({m.paper_id for m in found})
    assert pairs == [(pid, key) for pid in ids for key in (2, 10, "a", "b")]
    assert found == match_brute_force(papers, rules)


def test_frequencies_change_speed_not_results() -> None:
    """A term-frequency table only picks presearch terms; the matches are the same."""
    papers = fixture_papers("hf_api_daily_papers/hf_api_daily_papers_2024-03-15.json")
    rules = list(enumerate(["language model", "video diffusion OR multimodal", '"large language"',
                            "model -video", "multi* llm", "upvotes:>30"], 1))
    freq = term_frequencies(papers)
    assert freq["model"] > freq.get("multimod", 0) > 0
    with_table = compile_rules(rules, freq).match(papers)
    assert with_table == compile_rules(rules).match(papers) == match_brute_force(papers, rules)
    assert with_table


def test_rules_may_be_given_parsed() -> None:
    """compile_rules takes query text or a parsed AST alike."""
    p = Paper(id="x1", title="Graph transformers", source="hf-api")
    as_text = compile_rules([(1, "graph transformer")]).match([p])
    assert as_text == compile_rules([(1, parse("graph transformer"))]).match([p])
    assert len(as_text) == 1


def test_duplicate_rule_keys_are_refused() -> None:
    """Two rules under one key is a caller bug, reported at once."""
    with pytest.raises(ValueError, match="duplicate rule key 3"):
        compile_rules([(3, "a"), (3, "b")])


def test_rules_that_cannot_be_prefiltered_are_checked_on_every_paper() -> None:
    """Numeric-only rules and negations under OR are on the always-check list; others are not."""
    index = compile_rules(list(enumerate(
        ["upvotes:>5", "a OR NOT b", "diffusion", "a -b", "title:x OR y", "diffus*"], 1)))
    assert [index.keys[i] for i in index.always] == [1, 2]


def test_parsed_rules_carry_over_between_builds() -> None:
    """A `ParsedRules` given to successive builds keeps each rule text's parse: an unchanged
    rule is not parsed again (its entry is the same object), a removed one is dropped, and the
    index built this way matches like one built from scratch."""
    from paperalerts.core.rules import ParsedRules

    parsed = ParsedRules()
    first = [(1, "diffusion video"), (2, 'title:"video diffusion" -audio'), (3, "gone")]
    compile_rules(first, parsed=parsed)
    kept = {text: parsed[text] for text in ("diffusion video", 'title:"video diffusion" -audio')}
    second = [(1, "diffusion video"), (2, 'title:"video diffusion" -audio'), (4, "mamba")]
    index = compile_rules(second, parsed=parsed)
    assert set(parsed) == {"diffusion video", 'title:"video diffusion" -audio', "mamba"}
    assert all(parsed[text] is entry for text, entry in kept.items())
    paper = Paper(id="p", title="Video diffusion with mamba", source="s", abstract="")
    assert index.match([paper]) == compile_rules(second).match([paper])
    assert [m.rule for m in index.match([paper])] == [1, 2, 4]

"""Property tests: parse ∘ print is the identity, parsing never crashes, analysis is
consistent, and the index equals brute force for random rules and papers."""

from __future__ import annotations

import contextlib
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paperalerts.core.papers import Paper
from paperalerts.core.rules import (
    compile_rules,
    match_brute_force,
    match_with_index,
    parse,
    term_frequencies,
    to_text,
    turned_true,
    turned_true_brute_force,
)
from paperalerts.core.rules.syntax import (
    And,
    Exact,
    Not,
    Numeric,
    Or,
    Phrase,
    Prefix,
    Query,
    Term,
    Verbatim,
    is_positive,
)
from paperalerts.core.rules.text import tokenise, words
from paperalerts.errors import RuleError

# A small vocabulary so that random rules hit random papers: inflections (stemming), accents,
# hyphens, case, and words that are prefixes of others.
VOCAB = ["graph", "graphs", "Transformer", "transformers", "diffusion", "Diffusing", "café",
         "cafe", "self", "supervised", "self-supervised", "video", "and", "model", "modelling"]
SOURCES = ["hf-api", "arxiv", "HF-Trending"]
IDS = ["2401.00001", "2401.00002", "feed:x"]

word = st.sampled_from(VOCAB)
text_field = st.sampled_from([None, None, None, "title", "abstract", "author", "org"])


def leaf(field: str | None) -> st.SearchStrategy[Query]:
    """A leaf, scoped to `field` when given (a field group), else to a field of its own."""
    f = text_field if field is None else st.just(field)
    texts = st.builds(Term, word, f) | st.builds(
        lambda ws, fl: Phrase(" ".join(ws), fl), st.lists(word, min_size=1, max_size=3), f
    ) | st.builds(
        lambda ws, fl: Verbatim(" ".join(ws), fl), st.lists(word, min_size=1, max_size=2), f
    ) | st.builds(lambda w, fl: Prefix(w[:4], fl), st.sampled_from(VOCAB[:10]), f)
    if field is not None:
        return texts
    return texts | st.builds(Exact, st.just("source"), st.sampled_from(SOURCES)) | st.builds(
        Exact, st.just("id"), st.sampled_from(IDS)
    ) | st.builds(Numeric, st.sampled_from(["upvotes", "comments"]),
                  st.sampled_from([">=", "<=", ">", "<", "="]), st.integers(0, 12))


queries: st.SearchStrategy[Query] = st.recursive(
    leaf(None),
    lambda inner: st.builds(Not, inner)
    | st.builds(lambda cs: And(tuple(cs)), st.lists(inner, min_size=2, max_size=3))
    | st.builds(lambda cs: Or(tuple(cs)), st.lists(inner, min_size=2, max_size=3)),
    max_leaves=8,
)
positive_queries = queries.filter(is_positive)

sentence = st.lists(word, max_size=6).map(" ".join)
papers = st.builds(
    lambda i, t, a, au, org, src, extra, up, com: Paper(
        id=i, title=t, abstract=a, authors=tuple(au), organization=org, source=src,
        extra={"sources": extra}, upvotes=up, comments=com,
    ),
    st.sampled_from(IDS),
    sentence,
    sentence,
    st.lists(st.lists(word, min_size=1, max_size=2).map(" ".join), max_size=3),
    st.none() | sentence,
    st.sampled_from(SOURCES),
    st.lists(st.sampled_from(SOURCES), max_size=2),
    st.none() | st.integers(0, 12),
    st.none() | st.integers(0, 12),
)


@given(positive_queries)
def test_print_then_parse_is_the_identity(q: Query) -> None:
    """For any rule, parse(to_text(rule)) is the rule (flattened) and printing is idempotent."""
    parsed = parse(to_text(q))
    assert parse(to_text(parsed)) == parsed
    assert to_text(parse(to_text(parsed))) == to_text(parsed)


PIECES = [*'ab é-*:()"9=', " AND ", " OR ", "NOT ", "title:", "upvotes:>", "id:", "dif*", '="',
          'title:="']


PLAIN_PIECES = ["a", "B", "9", "AND", "OR", "NOT", "ANDx", "(", ")", " ", "  ", "-", "é"]


@given(st.lists(st.sampled_from(PLAIN_PIECES), max_size=16).map("".join))
def test_the_fast_path_for_plain_rules_is_the_parser(q: str) -> None:
    """`parse` reads plain rules (words, ANDs, parenthesised ORs) without the parser: the
    result, or the error, is exactly the recursive-descent parser's."""
    from paperalerts.core.rules.syntax import _parse

    try:
        expected: Query | str = _parse(q)
    except RuleError as e:
        expected = str(e)
    try:
        got: Query | str = parse(q)
    except RuleError as e:
        got = str(e)
    assert got == expected


@given(st.lists(st.sampled_from(PIECES), max_size=20).map("".join))
def test_random_text_parses_or_raises_rule_error(q: str) -> None:
    """Arbitrary input gives a rule or a RuleError with a position inside (or at the end of) it;
    a rule that parses survives printing."""
    try:
        parsed = parse(q)
    except RuleError as e:
        assert 0 <= e.position <= len(q)
        return
    assert parse(to_text(parsed)) == parsed


@given(st.text(max_size=60))
def test_random_unicode_never_crashes_the_parser(q: str) -> None:
    """Any string at all: a rule or a RuleError, never another exception."""
    with contextlib.suppress(RuleError):
        parse(q)


@given(st.text(max_size=80))
def test_tokens_are_the_words_with_their_offsets(text: str) -> None:
    """The fast `words` and the highlighting `tokenise` agree, and every offset is a real run
    of the original text that normalises back to its word."""
    toks = tokenise(text)
    assert [t.word for t in toks] == words(text)
    for t in toks:
        assert 0 <= t.start < t.end <= len(text)
        assert t.word in "".join(words(text[t.start:t.end]))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(positive_queries, min_size=1, max_size=8), st.lists(papers, max_size=5))
def test_index_equals_brute_force(rules: list[Query], batch: list[Paper]) -> None:
    """The index and the oracle return the same matches and explanations, for rules
    given as text (printed) or as ASTs, with or without a term-frequency table."""
    keyed = [(i, to_text(q)) for i, q in enumerate(rules, 1)]
    expected = match_brute_force(batch, keyed)
    assert compile_rules(keyed).match(batch) == expected
    assert compile_rules(list(enumerate(rules, 1))).match(batch) == expected
    assert match_with_index(batch, keyed, term_frequencies(batch)) == expected


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(positive_queries, min_size=1, max_size=8), st.lists(papers, max_size=5))
def test_printed_explanations_equal_brute_force(rules: list[Query], batch: list[Paper]) -> None:
    """The fast printing paths (`render`, what ``paperalerts match`` prints, and
    `match_terms_json`) say exactly what the oracle's explanations say, byte for byte as
    ``json.dumps`` would print them, for rules given as text or as ASTs."""
    keyed = [(i, to_text(q)) for i, q in enumerate(rules, 1)]
    expected = match_brute_force(batch, keyed)
    lines = "".join(
        json.dumps({"paper": m.paper_id, "rule": m.rule, "terms": list(m.terms)},
                   ensure_ascii=False) + "\n"
        for m in expected
    )
    for given_rules in (keyed, list(enumerate(rules, 1))):
        index = compile_rules(given_rules, term_frequencies(batch))
        printed = index.render(
            batch, lambda p: '{"paper": ' + json.dumps(p, ensure_ascii=False) + ', "rule": ',
            lambda k: f'{k}, "terms": ', "}\n")
        assert "".join(printed) == lines
        terms = [(pid, k, json.loads(t)) for pid, ks, ts in index.match_terms_json(batch)
                 for k, t in zip(ks, ts, strict=True)]
        assert terms == [(m.paper_id, m.rule, list(m.terms)) for m in expected]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(positive_queries, min_size=1, max_size=8),
    st.lists(papers, max_size=5),
    st.lists(papers, max_size=5),
)
def test_changed_verdicts_equal_brute_force(
    rules: list[Query], batch: list[Paper], before: list[Paper]
) -> None:
    """An update's matches are those whose rule holds for the paper now and did not for its
    previous value (papers without one are new: every match counts), by the index exactly as
    by the oracle."""
    keyed = [(i, to_text(q)) for i, q in enumerate(rules, 1)]
    previous = {p.id: p for p in before}
    expected = turned_true_brute_force(batch, previous, keyed)
    assert turned_true(compile_rules(keyed, term_frequencies(batch)), batch, previous) == expected
    was = {(m.paper_id, m.rule) for m in match_brute_force(previous.values(), keyed)}
    assert {(m.paper_id, m.rule) for m in expected} == {
        (m.paper_id, m.rule) for m in match_brute_force(batch, keyed)
    } - was


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(word, min_size=1, max_size=2), text_field, st.lists(papers, max_size=5))
def test_exact_word_form_matches_only_the_words_as_written(
    ws: list[str], field: str | None, batch: list[Paper]
) -> None:
    """``="..."`` holds exactly when the field has those normalised words in sequence, unstemmed
    (brute force: a token scan of the field's values), by the index as by the oracle; and the
    stemmed forms written today (``word``, ``"word"``, ``title:word``) keep matching at least
    every paper the exact form matches."""
    from paperalerts.core.rules.analysed import FIELD_CODES, AnalysedPaper

    exact = Verbatim(" ".join(ws), field)
    rule = to_text(exact)
    assert parse(rule) == exact
    want = words(exact.text)
    code = FIELD_CODES[field]

    def has(p: Paper) -> bool:
        for v in AnalysedPaper(p).values[code]:
            got = v.words
            if any(got[i : i + len(want)] == want for i in range(len(got))):
                return True
        return False

    keyed = [(1, rule), (2, to_text(Phrase(exact.text, field)))]
    found = compile_rules(keyed, term_frequencies(batch)).match(batch)
    assert found == match_brute_force(batch, keyed)
    exact_ids = [m.paper_id for m in found if m.rule == 1]
    assert exact_ids == sorted(p.id for p in batch if has(p))
    assert set(exact_ids) <= {m.paper_id for m in found if m.rule == 2}

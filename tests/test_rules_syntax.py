"""The rule language's parser: the AST it builds, its printed form, its errors."""

from __future__ import annotations

import pytest

from paperalerts.core.rules import parse, to_text
from paperalerts.core.rules.syntax import (
    MAX_LENGTH,
    MAX_TERMS,
    And,
    Exact,
    Not,
    Numeric,
    Or,
    Phrase,
    Prefix,
    Term,
)
from paperalerts.errors import RuleError


@pytest.mark.parametrize(
    ("query", "ast"),
    [
        ("diffusion", Term("diffusion")),
        ("diffusion model", And((Term("diffusion"), Term("model")))),
        ("diffusion AND model", And((Term("diffusion"), Term("model")))),
        ('"graph transformer"', Phrase("graph transformer")),
        ('"graph   transformer"', Phrase("graph transformer")),
        ("a OR b", Or((Term("a"), Term("b")))),
        ("NOT b a", And((Not(Term("b")), Term("a")))),
        ("a -b", And((Term("a"), Not(Term("b"))))),
        ("a -(b OR c)", And((Term("a"), Not(Or((Term("b"), Term("c"))))))),
        ('a -"b c"', And((Term("a"), Not(Phrase("b c"))))),
        ("diffus*", Prefix("diffus")),
        ("title:x", Term("x", "title")),
        ("TITLE:x", Term("x", "title")),
        ('author:"yann lecun"', Phrase("yann lecun", "author")),
        ("title:(a OR b)", Or((Term("a", "title"), Term("b", "title")))),
        ('abstract:(a "b c" dif*)',
         And((Term("a", "abstract"), Phrase("b c", "abstract"), Prefix("dif", "abstract")))),
        ("org:Meta", Term("Meta", "org")),
        ("source:hf-trending", Exact("source", "hf-trending")),
        ("source:(arxiv OR hf-api)", Or((Exact("source", "arxiv"), Exact("source", "hf-api")))),
        ("id:2401.12345", Exact("id", "2401.12345")),
        ("id:feed:abc", Exact("id", "feed:abc")),
        ('id:"a b"', Exact("id", "a b")),
        ("upvotes:>=20", Numeric("upvotes", ">=", 20)),
        ("comments:>5", Numeric("comments", ">", 5)),
        ("upvotes:<3", Numeric("upvotes", "<", 3)),
        ("upvotes:<=3", Numeric("upvotes", "<=", 3)),
        ("upvotes:=3", Numeric("upvotes", "=", 3)),
        ("upvotes:20", Numeric("upvotes", "=", 20)),
        ("self-supervised", Term("self-supervised")),
        ("10:30", Term("10:30")),
        ("Transformers", Term("Transformers")),
    ],
)
def test_parse_builds_the_ast(query: str, ast: object) -> None:
    """Each form of the language parses to its AST; words keep their text as written."""
    assert parse(query) == ast


@pytest.mark.parametrize(
    ("query", "ast"),
    [
        # NOT binds tighter than AND, AND tighter than OR
        ("a OR b c", Or((Term("a"), And((Term("b"), Term("c")))))),
        ("a b OR c", Or((And((Term("a"), Term("b"))), Term("c")))),
        ("NOT a OR b", Or((Not(Term("a")), Term("b")))),
        ("a AND NOT b OR c", Or((And((Term("a"), Not(Term("b")))), Term("c")))),
        ("(a OR b) c", And((Or((Term("a"), Term("b"))), Term("c")))),
        # nested groups of the same operator flatten
        ("a (b c)", And((Term("a"), Term("b"), Term("c")))),
        ("(a OR b) OR c", Or((Term("a"), Term("b"), Term("c")))),
        ("((a))", Term("a")),
    ],
)
def test_precedence_and_grouping(query: str, ast: object) -> None:
    """NOT > AND > OR; parentheses group; same-operator nesting is flattened."""
    assert parse(query) == ast


@pytest.mark.parametrize(
    ("query", "ast"),
    [
        ("a and b", And((Term("a"), Term("and"), Term("b")))),
        ("a or b", And((Term("a"), Term("or"), Term("b")))),
        ("a not b", And((Term("a"), Term("not"), Term("b")))),
        ("Android", Term("Android")),
        ('"AND"', Phrase("AND")),
        ("a NOT-b", And((Term("a"), Term("NOT-b")))),
    ],
)
def test_lower_case_operators_are_words(query: str, ast: object) -> None:
    """Only upper-case AND/OR/NOT standing alone are operators."""
    assert parse(query) == ast


@pytest.mark.parametrize(
    ("query", "reason", "position"),
    [
        ("", "empty rule", 0),
        ("   ", "empty rule", 0),
        ("diffusion AND (model", "unbalanced parenthesis", 14),
        ("(a", "unbalanced parenthesis", 0),
        ("a) b", "unbalanced parenthesis", 1),
        ("()", "empty parentheses", 0),
        ("titel:x", "unknown field 'titel'", 0),
        ("a Abstrct:x", "unknown field 'Abstrct'", 2),
        ("di*", "prefix 'di*' is too short", 0),
        ("x title:di*", "prefix 'di*' is too short", 8),
        ("d*f", "'*' is only allowed at the end of a word", 1),
        ("self-sup*", "a prefix must be a single word, not 'self-sup*'", 0),
        ("NOT a", "a rule needs at least one positive term", 0),
        ("  -a -b", "a rule needs at least one positive term", 2),
        ("NOT (a OR b)", "a rule needs at least one positive term", 0),
        ("a AND", "missing term after 'AND'", 2),
        ("a OR", "missing term after 'OR'", 2),
        ("a NOT", "missing term after 'NOT'", 2),
        ("a AND OR b", "missing term after 'AND'", 2),
        ("OR b", "'OR' needs a term before it", 0),
        ("a -", "'-' must be directly followed by a term", 2),
        ("a - b", "'-' must be directly followed by a term", 2),
        ('"abc', 'unterminated phrase (no closing ")', 0),
        ('x ""', "empty phrase (no letters or digits)", 2),
        ("&&", "'&&' has no letters or digits", 0),
        ("title:", "'title:' needs a value right after the colon", 6),
        ("title: x", "'title:' needs a value right after the colon", 6),
        ("upvotes:lots", "'upvotes:' takes a comparison such as upvotes:>=20", 8),
        ("upvotes:>= 20", "'upvotes:' takes a comparison such as upvotes:>=20", 8),
        ("upvotes:(>5)", "'upvotes:' takes a comparison such as upvotes:>=20", 8),
        ("title:(abstract:x)", "field 'abstract:' inside 'title:( ... )'", 7),
        ("id:24*", "'id:' takes an exact value, not a prefix", 5),
        ('source:""', "empty value for 'source:'", 7),
    ],
)
def test_errors_name_the_problem_and_its_position(query: str, reason: str, position: int) -> None:
    """Malformed rules raise RuleError with a specific reason and character position."""
    with pytest.raises(RuleError) as info:
        parse(query)
    assert (info.value.reason, info.value.position) == (reason, position)
    assert str(info.value).startswith(f"{reason} at {position}")


def test_unknown_field_suggests_the_closest() -> None:
    """A misspelt field name comes with a difflib suggestion after the position."""
    with pytest.raises(RuleError) as info:
        parse("titel:x")
    assert str(info.value) == "unknown field 'titel' at 0 — did you mean 'title'?"


def test_unknown_field_without_a_close_one_lists_the_fields() -> None:
    """With no close match the hint lists every field."""
    with pytest.raises(RuleError) as info:
        parse("zzz:x")
    assert info.value.hint.startswith("fields are title, abstract, author, org, source, id")


def test_length_limit() -> None:
    """1,000 characters are accepted; 1,001 are refused at position 1000."""
    assert parse("a" * MAX_LENGTH) == Term("a" * MAX_LENGTH)
    with pytest.raises(RuleError) as info:
        parse("a" * (MAX_LENGTH + 1))
    assert info.value.position == MAX_LENGTH


def test_term_limit() -> None:
    """64 terms are accepted; the 65th is refused at its own position."""
    assert len(parse(" ".join(["w"] * MAX_TERMS)).children) == MAX_TERMS  # type: ignore[union-attr]
    with pytest.raises(RuleError) as info:
        parse(" ".join(["w"] * (MAX_TERMS + 1)))
    assert info.value.reason == "a rule is limited to 64 terms"
    assert info.value.position == 2 * MAX_TERMS


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    """Hundreds of nested parentheses or negations give RuleError, never RecursionError."""
    for query in ("(" * 400 + "a" + ")" * 400, "-" * 900 + "a", "NOT " * 200 + "a b"):
        with pytest.raises(RuleError) as info:
            parse(query)
        assert "nested more than" in info.value.reason


@pytest.mark.parametrize(
    ("query", "printed"),
    [
        ("diffusion model", "diffusion AND model"),
        ("a OR b c", "a OR (b AND c)"),
        ("(a OR b) -c", "(a OR b) AND NOT c"),
        ("title:(a OR \"b  c\") abstract:y", '(title:a OR title:"b c") AND abstract:y'),
        ("NOT (a b) c", "NOT (a AND b) AND c"),
        ("upvotes:20 x", "upvotes:20 AND x"),
        ('id:"a b" OR x', 'id:"a b" OR x'),
        ("source:(x)", "source:x"),
        ("Diffus*", "Diffus*"),
        ("a and b", "a AND and AND b"),
    ],
)
def test_to_text_prints_the_normalised_form(query: str, printed: str) -> None:
    """Explicit operators, fields on every leaf, parentheses around nested groups."""
    assert to_text(parse(query)) == printed
    assert parse(printed) == parse(query)
    assert to_text(parse(printed)) == printed

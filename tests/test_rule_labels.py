"""Readable labels for rules and their matched terms (what emails call an unnamed rule)."""

from __future__ import annotations

import pytest

from paperalerts.core.rules.label import display_name, rule_label, why_terms
from paperalerts.core.rules.lint import check_rule_text


@pytest.mark.parametrize(("query", "label"), [
    ("upvotes:>=30", "upvotes ≥ 30"),
    ("comments:>5", "comments > 5"),
    ("diffusion video", "diffusion & video"),
    ("diffusion AND video", "diffusion & video"),
    ("diffusion OR video", "diffusion / video"),
    ('title:"graph transformer" OR gnn*', '"graph transformer" in title / gnn…'),
    ('author:"yann lecun" -survey', "by yann lecun & without survey"),
    ("(a OR b) c", "(a / b) & c"),
    ("source:hf-trending", "on hf-trending"),
    ("id:2401.12345", "paper 2401.12345"),
    ("org:deepmind", "from deepmind"),
    ("x AND (", "x AND ("),  # does not parse: the text, whitespace collapsed
])  # fmt: skip
def test_rule_labels_read_as_words(query: str, label: str) -> None:
    """Each form of the rule language has a label without field syntax or operators."""
    assert rule_label(query) == label


@pytest.mark.parametrize("query", [
    "diffusion video", "diffusion OR video", "diffusion OR transformer",
    'title:"graph transformer" OR gnn*', 'author:"yann lecun" -survey', "(a OR b) c",
    "diffusion -survey", "(a OR b) (c OR d)",
])  # fmt: skip
def test_a_label_typed_as_a_rule_is_refused_not_misread(query: str) -> None:
    """Labels join terms with "&" and "/" (and say "without"), never with the lower-case "or"
    that a rule field would save as the word "or": a label of a rule with AND, OR or NOT,
    typed back into a rule field, is refused with its position, never read as another rule."""
    label = rule_label(query)
    assert " or " not in label and " + " not in label and " and " not in label
    verdict = check_rule_text(label)
    assert not verdict.ok and verdict.position is not None


def test_labels_are_capped() -> None:
    """A long rule's label is cut with an ellipsis."""
    assert len(rule_label(" OR ".join(f"word{i}" for i in range(40)), limit=40)) == 40


def test_display_name_prefers_a_real_name() -> None:
    """A rule's own name wins; no name, or a name that is just the query, gives the label."""
    assert display_name("Diffusion", "diffus*") == "Diffusion"
    assert display_name(None, "upvotes:>=30") == "upvotes ≥ 30"
    assert display_name("upvotes:>=30", "upvotes:>=30") == "upvotes ≥ 30"


def test_why_terms_leave_out_what_the_name_says() -> None:
    """"Why: upvotes ≥ 30", not "Why: upvotes ≥ 30 (upvotes ≥ 30)"; terms the name does not say
    stay, in words."""
    assert why_terms("upvotes ≥ 30", ["upvotes:>=30"]) == ()
    assert why_terms("Popular", ["upvotes:>=30"]) == ("upvotes ≥ 30",)
    assert why_terms("LLMs", ["title:language", "model"]) == ("language in title", "model")

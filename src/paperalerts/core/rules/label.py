"""Readable names for rules and their terms, for people who never saw the rule language. Pure.

An unnamed rule is shown by a label built from its terms rather than its query text:
``upvotes:>=30`` reads "upvotes ≥ 30", ``diffusion video`` "diffusion & video",
``title:"graph transformer" OR gnn*`` '"graph transformer" in title / gnn…',
``author:"yann lecun" -survey`` "by yann lecun & without survey". The connectives are symbols and
words the rule language does not use as operators, so a label can never be taken for a rule
that means something else: typed into a rule field, "a / b" or "a + b" is refused (punctuation),
never saved as the lower-case "a or b" was (the words "a", "or", "b"). A query that does not
parse (a rule stored before a language change) falls back to its text with whitespace collapsed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

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
    parse,
)
from paperalerts.errors import RuleError

LABEL_MAX: Final = 80
_OPS: Final = {">=": "≥", "<=": "≤", ">": ">", "<": "<", "=": "="}
_FIELD_WORDS: Final = {"author": "by {}", "org": "from {}", "source": "on {}", "id": "paper {}"}


def _leaf(node: Term | Phrase | Verbatim | Prefix | Exact | Numeric) -> str:
    if isinstance(node, Numeric):
        return f"{node.field} {_OPS.get(node.op, node.op)} {node.value}"
    if isinstance(node, Exact):
        return _FIELD_WORDS[node.field].format(node.value)
    if isinstance(node, Prefix):
        text = node.text + "…"
    elif isinstance(node, Verbatim):
        text = f"“{node.text}” exactly"  # typographic quotes: not the rule's ="..."
    elif isinstance(node, Phrase) and node.field not in _FIELD_WORDS:
        text = f'"{node.text}"'  # quotes say "in this order"; a name needs none
    else:
        text = node.text
    if node.field in _FIELD_WORDS:
        return _FIELD_WORDS[node.field].format(text)
    return f"{text} in {node.field}" if node.field else text


def _label(node: Query) -> str:
    if isinstance(node, Not):
        inner = _label(node.child)
        return f"without ({inner})" if isinstance(node.child, And | Or) else f"without {inner}"
    if isinstance(node, And):
        return " & ".join(f"({_label(c)})" if isinstance(c, Or) else _label(c)
                          for c in node.children)  # fmt: skip
    if isinstance(node, Or):
        return " / ".join(f"({_label(c)})" if isinstance(c, And) else _label(c)
                          for c in node.children)  # fmt: skip
    return _leaf(node)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def rule_label(query: str, limit: int = LABEL_MAX) -> str:
    """A short readable name for the rule `query` (see the module docstring), at most `limit`
    characters."""
    try:
        return _clip(_label(parse(query)), limit)
    except RuleError:
        return _clip(" ".join(query.split()), limit)


def term_label(term: str) -> str:
    """One matched term as the engine reports it (``upvotes:>=30``, ``title:diffusion``) in
    words ("upvotes ≥ 30", "diffusion in title")."""
    return rule_label(term)


def display_name(name: str | None, query: str) -> str:
    """What a rule is called in emails: its name, unless it has none or the name is just its
    query text (unnamed rules used to be stored that way), then its label."""
    name = (name or "").strip()
    if not name or " ".join(name.split()) == " ".join(query.split()):
        return rule_label(query)
    return name


def why_terms(rule_name: str, terms: Sequence[str]) -> tuple[str, ...]:
    """The matched `terms` in words, minus what `rule_name` already says: "Why: upvotes ≥ 30"
    rather than "Why: upvotes ≥ 30 (upvotes ≥ 30)". Empty when the name says it all."""
    shown = tuple(dict.fromkeys(term_label(t) for t in terms))
    name = rule_name.casefold()
    if all(t.casefold() in name for t in shown):
        return ()
    return shown

"""The one rule check every surface uses, and the lint behind it. Pure.

The language has uppercase operators only (AND, OR, NOT), so ``diffusion or transformer`` asks
for the word "or" as well: it parses, but almost never says what its writer meant. Changing
that meaning would silently alter rules people already have, so it stays a word, and a rule
that uses one is *refused* (with the fix) wherever rules are entered: sign-up, the manage page,
the admin editor, CSV import, the API and the CLI all call `check_rule_text`. A refusal loses
nothing (the text stays where it was typed) and every meaning stays expressible: ``OR`` for the
operator, ``"or"`` in quotes for the word. (A standalone ``/``, ``|`` or ``+``, what labels
and other search engines write, is a parse error already.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from paperalerts.core.rules.syntax import parse, to_text
from paperalerts.errors import RuleError

# Words outside double quotes, with their offsets; parentheses and a leading "-" are not part of
# the word for this purpose.
_WORD = re.compile(r'"[^"]*"?|[^\s()"]+')
_OPERATOR_WORDS = {"and": "AND", "or": "OR", "not": "NOT"}


@dataclass(frozen=True, slots=True)
class RuleWarning:
    """`message` about the text at `position` (0-based), with the rule as it was probably meant
    in `suggestion` when there is one."""

    message: str
    position: int
    suggestion: str = ""


def _findings(query: str) -> list[tuple[int, int, str, str]]:
    """(start, end, operator, message) of each word the lint flags, left to right."""
    found: list[tuple[int, int, str, str]] = []
    for m in _WORD.finditer(query):
        word = m.group()
        if word.startswith('"') or word.lower() not in _OPERATOR_WORDS or word.isupper():
            continue
        op = _OPERATOR_WORDS[word.lower()]
        message = (
            f"'{word}' would be searched as a word; write {op} to use it as an operator, "
            f'or "{word}" in quotes to search for the word'
        )
        found.append((m.start(), m.end(), op, message))
    return found


def rule_warnings(query: str) -> list[RuleWarning]:
    """Every lowercase (or mixed-case) and/or/not outside quotes, left to right, each with the
    rule as it was probably meant."""
    return [
        RuleWarning(message, start, query[:start] + op + query[end:])
        for start, end, op, message in _findings(query)
    ]


def _fix_all(query: str) -> str:
    """`query` with every flagged word replaced by its operator (right to left: offsets hold)."""
    out = query
    for start, end, op, _ in reversed(_findings(query)):
        out = out[:start] + op + out[end:]
    return out


@dataclass(frozen=True, slots=True)
class RuleVerdict:
    """A rule's check: its normalised form when accepted; else the problem (`error` at
    `position`, with a `hint`: the parser's, or the rule as probably meant). `warnings` are the
    lint's findings (each refuses the rule)."""

    normalized: str | None
    error: str | None = None
    position: int | None = None
    hint: str | None = None
    warnings: tuple[RuleWarning, ...] = ()

    @property
    def ok(self) -> bool:
        return self.normalized is not None

    @property
    def message(self) -> str:
        """One line: "<error> at <position> — <hint>" ("" when accepted)."""
        if self.ok:
            return ""
        hint = f" — {self.hint}" if self.hint else ""
        return f"{self.error} at {self.position}{hint}"


def check_rule_text(query: str) -> RuleVerdict:
    """The rule check of every surface: a parse error, else a lint finding, refuses the rule."""
    warnings = rule_warnings(query)
    try:
        normalized = to_text(parse(query))
    except RuleError as e:
        return RuleVerdict(None, e.reason, e.position, e.hint or None, tuple(warnings))
    if warnings:
        first = warnings[0]
        return RuleVerdict(None, first.message, first.position,
                           f"did you mean: {_fix_all(query)}", tuple(warnings))  # fmt: skip
    return RuleVerdict(normalized)

"""Warnings about rules that parse but probably do not say what their writer meant. Pure.

The language has uppercase operators only (AND, OR, NOT), so ``diffusion and video`` asks for the
word "and" as well: valid, but almost never intended. Changing that meaning would silently alter
rules people already have, so it stays a word and the writer is told, with the fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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


def rule_warnings(query: str) -> list[RuleWarning]:
    """Every lowercase and/or/not used between words, left to right."""
    found: list[RuleWarning] = []
    for m in _WORD.finditer(query):
        word = m.group()
        if word.startswith('"') or word.lower() not in _OPERATOR_WORDS or word.isupper():
            continue
        op = _OPERATOR_WORDS[word.lower()]
        fixed = query[: m.start()] + op + query[m.end() :]
        found.append(
            RuleWarning(
                f"'{word}' is searched as a word; write {op} to use it as an operator",
                m.start(),
                fixed,
            )
        )
    return found

"""The commonest rule shape, recognised without the parser. Pure.

Most alert rules are words, ANDs of words and parenthesised ORs of words, spaced by single
spaces (``mamba (video OR audio)``, ``graph AND (transformer OR attention)``). One regular
expression recognises that shape; such a rule is valid by construction, its words are its
groups, and `syntax.parse` builds its AST directly. Anything else (fields, phrases, NOT, ``-``,
other spacing or characters) takes the parser. A property test pins that both give the same.
"""

from __future__ import annotations

import re

MAX_TERMS = 64  # syntax.MAX_TERMS: a plain rule with more words takes the parser (an error)

_PLAIN = r"(?!(?:AND|OR|NOT)(?![A-Za-z0-9]))[A-Za-z0-9]+"
_ITEM = rf"(?:{_PLAIN}|\((?:{_PLAIN} OR )*{_PLAIN}\))"
_SIMPLE_RE = re.compile(rf"{_ITEM}(?: (?:AND )?{_ITEM})*")
_SIMPLE_PART_RE = re.compile(r"\(([^)]*)\)|([A-Za-z0-9]+)")


def is_plain(q: str) -> bool:
    """Whether `q` has the plain shape (then it is a valid rule)."""
    return _SIMPLE_RE.fullmatch(q) is not None and q.count(" ") < MAX_TERMS


def plain_groups(q: str) -> list[list[str]] | None:
    """The words of each AND-ed group of `q` (``a (b OR c)`` -> ``[["a"], ["b", "c"]]``) when
    `q` has the plain shape, else None. Such a `q` is a valid rule."""
    if not is_plain(q):
        return None
    return [
        group.split(" OR ") if group else [word]
        for group, word in _SIMPLE_PART_RE.findall(q)
        if word != "AND"
    ]

"""Counting in words, for every face (CLI lines, pages): "1 rule", "2 rules", "0 rules"."""

from __future__ import annotations


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 rule``, ``2 rules``, ``0 rules`` (`many` for irregular plurals: entry, entries)."""
    return f"{n} {word if n == 1 else many or word + 's'}"

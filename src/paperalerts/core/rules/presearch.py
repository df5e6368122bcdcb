"""The presearch (after Lucene Monitor's presearcher): for a rule, a set of keys such that any
paper the rule matches has at least one of them, and what a paper found through them must still
pass. See `engine` for how the index uses them. Pure."""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from itertools import pairwise
from typing import NamedTuple

from paperalerts.core.rules.analysed import (
    IdLeaf,
    PrefixLeaf,
    SourceLeaf,
    VerbatimLeaf,
    WordLeaf,
    pair,
)
from paperalerts.core.rules.text import stem as stem_word
from paperalerts.core.rules.tree import AllOf, AnyOf, Node

# (kind, field code, value); kind: "w" stem, "b" pair of adjacent stems, "p" word prefix,
# "s" source name, "i" id
Key = tuple[str, int, str]


class Costs:
    """How many papers a key is expected to hit: lower is rarer, so a better presearch key."""

    def __init__(self, frequencies: Mapping[str, int] | None) -> None:
        self.freq = frequencies
        self.sorted = sorted(frequencies) if frequencies is not None else []

    def stem(self, s: str) -> float:
        if self.freq is None:  # no statistics: longer stems are usually rarer
            return float(2 ** max(0, 12 - len(s)))
        return float(self.freq.get(s, 0))

    def pair(self, ab: tuple[str, str]) -> float:
        # no statistics on pairs: adjacent words are rarer than either, often not by much
        return min(self.stem(ab[0]), self.stem(ab[1])) / 2

    def prefix(self, p: str) -> float:
        if self.freq is None:
            return 4 * self.stem(p)
        q = min(p, stem_word(p), key=len)  # a word's stem may be shorter than the prefix
        lo = bisect.bisect_left(self.sorted, q)
        hi = bisect.bisect_left(self.sorted, q + "\U0010ffff")
        return float(sum(self.freq[s] for s in self.sorted[lo:hi]))


class Presearch(NamedTuple):
    cost: float  # expected papers hitting one of the keys: lower is better
    keys: list[Key]  # a matching paper has at least one of these
    residual: Node | None  # what remains to check once a key is found (None: nothing)


def presearch(n: Node, costs: Costs) -> Presearch | None:
    """Keys for `n`, or None when `n` cannot be prefiltered (numeric filters, negations, an OR
    with such a branch)."""
    if isinstance(n, WordLeaf) and len(n.stems) == 1:
        return Presearch(costs.stem(n.stems[0]), [("w", n.f, n.stems[0])], None)
    if isinstance(n, WordLeaf):  # a phrase: index its rarest pair of adjacent stems
        a, b = min(pairwise(n.stems), key=costs.pair)
        return Presearch(costs.pair((a, b)), [("b", n.f, pair(a, b))],
                          None if len(n.stems) == 2 else n)
    if isinstance(n, VerbatimLeaf):  # found by its stems (the words have them), then checked
        if len(n.stems) == 1:
            return Presearch(costs.stem(n.stems[0]), [("w", n.f, n.stems[0])], n)
        a, b = min(pairwise(n.stems), key=costs.pair)
        return Presearch(costs.pair((a, b)), [("b", n.f, pair(a, b))], n)
    if isinstance(n, PrefixLeaf):
        return Presearch(costs.prefix(n.prefix), [("p", n.f, n.prefix)], None)
    if isinstance(n, SourceLeaf):  # every paper of the source has it: a last resort
        return Presearch(1e9, [("s", 0, n.name)], None)
    if isinstance(n, IdLeaf):
        return Presearch(0.0, [("i", 0, n.value)], None)
    if isinstance(n, AllOf):  # index the cheapest child; check the others
        options = [(k, c) for c in n.children if (k := presearch(c, costs)) is not None]
        if not options:
            return None
        best, chosen = min(options, key=lambda o: o[0].cost)
        rest = [c for c in n.children if c is not chosen]
        if best.residual is not None:
            rest.append(best.residual)
        residual = None if not rest else rest[0] if len(rest) == 1 else AllOf(tuple(rest))
        return Presearch(best.cost, best.keys, residual)
    if isinstance(n, AnyOf):  # every branch must bring keys
        parts = [presearch(c, costs) for c in n.children]
        if any(p is None for p in parts):
            return None
        found = [p for p in parts if p is not None]
        exact = all(p.residual is None for p in found)
        return Presearch(sum(p.cost for p in found), [k for p in found for k in p.keys],
                          None if exact else n)
    return None

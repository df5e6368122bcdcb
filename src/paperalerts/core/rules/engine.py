"""The percolator: compile many rules once, then match papers against all of them. Pure.

``compile_rules`` parses and analyses every rule and builds a presearch index, after Lucene
Monitor's presearcher: for each rule a set of *keys* such that any paper the rule matches has at
least one of them. A conjunction contributes only its rarest required key (rarity from a
document-frequency table when given, see `term_frequencies`, else "longer stems are rarer"); a
disjunction contributes a key from every branch; a term contributes its rarest stem in its field,
a prefix its prefix (looked up for every prefix length of every paper word), ``source:``/``id:``
their value. Rules with no such key set (only numeric filters, a negation under OR) are checked
against every paper. Matching a paper then means: analyse it once (`AnalysedPaper`), look up its
stems, word prefixes, sources and id, and check only the rules found, and only for what their key
does not already promise (``diffusion video`` indexed under ``video`` still needs ``diffusion``;
a single term or an OR of terms needs nothing: being found *is* matching). Checks are set
operations on the paper's stems (`tree.check`).

``match_brute_force`` is the oracle: every rule, every paper, a plain tree walk over the leaves'
own tests (token scans, no sets, no index; `tree.holds`). The contract, checked by property
tests: ``RuleIndex.match(papers) == match_brute_force(papers, rules)`` for every input. Both
explain a match with `tree.explain`.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from itertools import pairwise
from typing import NamedTuple

from paperalerts.core.papers import Paper
from paperalerts.core.rules.analysed import (
    DEFAULT,
    AnalysedLeaf,
    AnalysedPaper,
    IdLeaf,
    PrefixLeaf,
    SourceLeaf,
    WordLeaf,
    pair,
)
from paperalerts.core.rules.syntax import Leaf, Query, parse
from paperalerts.core.rules.text import stem as stem_word
from paperalerts.core.rules.tree import (
    AllOf,
    AnyOf,
    Check,
    Match,
    Node,
    RuleKey,
    analyse,
    check,
    explain,
    holds,
    predicate,
)

Rules = Iterable[tuple[RuleKey, str | Query]]
# (kind, field code, value); kind: "w" stem, "b" pair of adjacent stems, "p" word prefix,
# "s" source name, "i" id
Key = tuple[str, int, str]


def term_frequencies(papers: Iterable[Paper]) -> dict[str, int]:
    """Document frequency of each stem in the papers' titles and abstracts: pass it to
    `compile_rules` (computed over recent papers) so the presearch picks truly rare terms."""
    freq: dict[str, int] = {}
    for p in papers:
        for s in AnalysedPaper(p).stems[DEFAULT]:
            freq[s] = freq.get(s, 0) + 1
    return freq


class _Costs:
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


class _Presearch(NamedTuple):
    cost: float  # expected papers hitting one of the keys: lower is better
    keys: list[Key]  # a matching paper has at least one of these
    residual: Node | None  # what remains to check once a key is found (None: nothing)


def _presearch(n: Node, costs: _Costs) -> _Presearch | None:
    """Keys for `n`, or None when `n` cannot be prefiltered (numeric filters, negations, an OR
    with such a branch)."""
    if isinstance(n, WordLeaf) and len(n.stems) == 1:
        return _Presearch(costs.stem(n.stems[0]), [("w", n.f, n.stems[0])], None)
    if isinstance(n, WordLeaf):  # a phrase: index its rarest pair of adjacent stems
        a, b = min(pairwise(n.stems), key=costs.pair)
        return _Presearch(costs.pair((a, b)), [("b", n.f, pair(a, b))],
                          None if len(n.stems) == 2 else n)
    if isinstance(n, PrefixLeaf):
        return _Presearch(costs.prefix(n.prefix), [("p", n.f, n.prefix)], None)
    if isinstance(n, SourceLeaf):  # every paper of the source has it: a last resort
        return _Presearch(1e9, [("s", 0, n.name)], None)
    if isinstance(n, IdLeaf):
        return _Presearch(0.0, [("i", 0, n.value)], None)
    if isinstance(n, AllOf):  # index the cheapest child; check the others
        options = [(k, c) for c in n.children if (k := _presearch(c, costs)) is not None]
        if not options:
            return None
        best, chosen = min(options, key=lambda o: o[0].cost)
        rest = [c for c in n.children if c is not chosen]
        if best.residual is not None:
            rest.append(best.residual)
        residual = None if not rest else rest[0] if len(rest) == 1 else AllOf(tuple(rest))
        return _Presearch(best.cost, best.keys, residual)
    if isinstance(n, AnyOf):  # every branch must bring keys
        parts = [_presearch(c, costs) for c in n.children]
        if any(p is None for p in parts):
            return None
        found = [p for p in parts if p is not None]
        exact = all(p.residual is None for p in found)
        return _Presearch(sum(p.cost for p in found), [k for p in found for k in p.keys],
                          None if exact else n)
    return None


def _rule_order(key: RuleKey) -> tuple[bool, int | str]:
    return (isinstance(key, str), key)


def _prepare(rules: Rules) -> list[tuple[RuleKey, Query]]:
    items: dict[RuleKey, Query] = {}
    for key, rule in rules:
        if key in items:
            raise ValueError(f"duplicate rule key {key!r}")
        items[key] = parse(rule) if isinstance(rule, str) else rule
    return sorted(items.items(), key=lambda kv: _rule_order(kv[0]))


class RuleIndex:
    """Compiled rules with their presearch index; build with `compile_rules`, reuse for many
    `match` calls. Immutable after construction."""

    def __init__(self, rules: Rules, frequencies: Mapping[str, int] | None = None) -> None:
        items = _prepare(rules)
        costs = _Costs(frequencies)
        cache: dict[Leaf, AnalysedLeaf] = {}
        self.keys: list[RuleKey] = [k for k, _ in items]
        self.queries: list[Query] = [q for _, q in items]
        self._nodes: list[Node] = []
        self._checks: list[Check] = []  # per rule, what a candidate must still pass
        self._words: list[dict[str, list[int]]] = [{} for _ in range(5)]
        self._pairs: list[dict[str, list[int]]] = [{} for _ in range(5)]
        self._prefixes: list[dict[str, list[int]]] = [{} for _ in range(5)]
        self._exact: dict[tuple[str, str], list[int]] = {}
        self.always: list[int] = []
        # ordinals made in one go sit together in memory: candidate sets hash and sort them
        # without a cache miss per rule
        ordinals = list(range(len(items)))
        for ordinal, (_, q) in zip(ordinals, items, strict=True):
            node = analyse(q, cache)
            self._nodes.append(node)
            found = _presearch(node, costs)
            if found is None:
                self._checks.append(predicate(node))
                self.always.append(ordinal)
                continue
            residual = found.residual
            self._checks.append(None if residual is None else check(residual))
            for kind, f, value in dict.fromkeys(found.keys):
                if kind == "w":
                    self._words[f].setdefault(value, []).append(ordinal)
                elif kind == "b":
                    self._pairs[f].setdefault(value, []).append(ordinal)
                elif kind == "p":
                    self._prefixes[f].setdefault(value, []).append(ordinal)
                else:
                    self._exact.setdefault((kind, value), []).append(ordinal)
        self._prefix_lengths = sorted({len(p) for idx in self._prefixes for p in idx})

    def __len__(self) -> int:
        return len(self.keys)

    def candidates(self, d: AnalysedPaper) -> list[int]:
        """Ordinals (in rule-key order) of the rules that may match `d`: a superset of matches."""
        return list(dict.fromkeys(self._postings(d)))

    def _postings(self, d: AnalysedPaper) -> list[int]:
        """The candidates, sorted, a rule with several keys once per key found. (A list and a
        sort cost half what a set does here: the set hashes every ordinal.)"""
        found: list[int] = list(self.always)
        for f in range(5):
            words = self._words[f]
            if words:
                for s in words.keys() & d.stems[f]:
                    found += words[s]
            pairs = self._pairs[f]
            if pairs:
                for p in pairs.keys() & d.pairs[f]:
                    found += pairs[p]
            prefixes = self._prefixes[f]
            if prefixes:
                for w in d.words[f]:
                    for n in self._prefix_lengths:
                        if n > len(w):
                            break
                        hit = prefixes.get(w[:n])
                        if hit:
                            found += hit
        if self._exact:
            for key in [("i", d.id), *(("s", name) for name in d.source_spans)]:
                found += self._exact.get(key, ())
        found.sort()
        return found

    def match(self, papers: Iterable[Paper]) -> list[Match]:
        """Every (paper, rule) that matches, with explanations, sorted by paper id then rule key.
        Each paper is analysed once."""
        out: list[Match] = []
        keys, nodes = self.keys, self._nodes
        for paper in sorted(papers, key=lambda p: p.id):
            d = AnalysedPaper(paper)
            out += [_explained(d, keys[r], nodes[r]) for r in self._matching(d)]
        return out

    def matching_rules(self, paper: Paper) -> list[RuleKey]:
        """The keys of the rules `paper` matches, in key order, without explanations: for
        counting, or to skip pairs already stored before paying for their explanations."""
        keys = self.keys
        return [keys[r] for r in self._matching(AnalysedPaper(paper))]

    def _matching(self, d: AnalysedPaper) -> list[int]:
        checks, default = self._checks, d.stems[DEFAULT]
        out = []
        last = -1
        for r in self._postings(d):
            if r == last:  # found through a second key
                continue
            last = r
            c = checks[r]
            if (
                c is None
                or (c in default if isinstance(c, str)
                    else default.issuperset(c) if isinstance(c, tuple) else c(d))
            ):
                out.append(r)
        return out


def compile_rules(rules: Rules, frequencies: Mapping[str, int] | None = None) -> RuleIndex:
    """Parse (where given as text), analyse and index `rules` once. Keys must be unique (ints, or
    strings; ints sort first). Raises RuleError for the first malformed rule text."""
    return RuleIndex(rules, frequencies)


def match_with_index(
    papers: Iterable[Paper], rules: Rules, frequencies: Mapping[str, int] | None = None
) -> list[Match]:
    """``compile_rules(rules, frequencies).match(papers)``, under the name the pipeline uses."""
    return compile_rules(rules, frequencies).match(papers)


def match_brute_force(papers: Iterable[Paper], rules: Rules) -> list[Match]:
    """The oracle: every rule evaluated on every paper, no index. Same result as
    `RuleIndex.match`, sorted the same way."""
    items = _prepare(rules)
    cache: dict[Leaf, AnalysedLeaf] = {}
    nodes = [(key, analyse(q, cache)) for key, q in items]
    out: list[Match] = []
    for paper in sorted(papers, key=lambda p: p.id):
        d = AnalysedPaper(paper)
        out.extend(_explained(d, key, node) for key, node in nodes if holds(node, d))
    return out


def _explained(d: AnalysedPaper, rule: RuleKey, node: Node) -> Match:
    m = explain(d, rule, node)
    if m is None:  # only asked for rules found to hold: the evaluations disagree
        raise AssertionError(f"rule {rule!r} holds on {d.id!r} but has no explanation")
    return m

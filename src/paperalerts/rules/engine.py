"""The percolator: compile many rules once, then match papers against all of them. Pure.

``compile_rules`` parses and analyses every rule and builds a presearch index, after Lucene
Monitor's presearcher: for each rule a set of *keys* such that any paper the rule matches has at
least one of them. A conjunction contributes only its rarest required key (rarity from a
document-frequency table when given, see `term_frequencies`, else "longer stems are rarer"); a
disjunction contributes a key from every branch; a term contributes its rarest stem in its field,
a prefix its prefix (looked up for every prefix length of every paper word), ``source:``/``id:``
their value. Rules with no such key set (only numeric filters, a negation under OR) are checked
against every paper. Matching a paper then means: analyse it once (`AnalysedPaper`), look up its
stems, word prefixes, sources and id, and check only the rules found, with a predicate compiled
from the rule (set operations on the paper's stems). Rules that are a single term or an OR of
single terms need no check: being found *is* matching.

``match_brute_force`` is the oracle: every rule, every paper, a plain tree walk over the leaves'
own tests (token scans, no sets, no index). DESIGN §5: ``RuleIndex.match(papers) ==
match_brute_force(papers, rules)`` for every input. Both build the explanation (terms and hits)
with the same function, from the rule's subtrees that are true: a term under a NOT, or in a false
branch of an OR, is never reported as a reason.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from paperalerts.papers import Paper
from paperalerts.rules.analysed import (
    DEFAULT,
    FIELD_ORDER,
    AnalysedLeaf,
    AnalysedPaper,
    Hit,
    IdLeaf,
    PrefixLeaf,
    SourceLeaf,
    WordLeaf,
    analyse_leaf,
)
from paperalerts.rules.syntax import And, Leaf, Not, Or, Query, parse
from paperalerts.rules.text import stem as stem_word

RuleKey = int | str
Rules = Iterable[tuple[RuleKey, str | Query]]
Pred = Callable[[AnalysedPaper], bool]
Key = tuple[str, int, str]  # ("w" word | "p" prefix | "s" source | "i" id, field code, value)


@dataclass(frozen=True, slots=True)
class Match:
    """`rule` matched paper `paper_id`; `terms` are the rule's terms that hit (as written, in rule
    order, with their field: ``title:diffusion``, ``"graph transformer"``, ``upvotes:>=20``) and
    `hits` where, sorted by field, then offset."""

    paper_id: str
    rule: RuleKey
    terms: tuple[str, ...]
    hits: tuple[Hit, ...]


@dataclass(frozen=True, slots=True)
class _All:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class _Any:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class _Not:
    child: Node


Node = AnalysedLeaf | _All | _Any | _Not


def explanation_json(match: Match) -> dict[str, Any]:
    """The explanation stored with a match and rendered in emails:
    ``{"terms": [...], "hits": [{"field", "term", "start", "end"}, ...]}``."""
    return {
        "terms": list(match.terms),
        "hits": [{"field": h.field, "term": h.term, "start": h.start, "end": h.end}
                 for h in match.hits],
    }


def term_frequencies(papers: Iterable[Paper]) -> dict[str, int]:
    """Document frequency of each stem in the papers' titles and abstracts: pass it to
    `compile_rules` (computed over recent papers) so the presearch picks truly rare terms."""
    freq: dict[str, int] = {}
    for p in papers:
        for s in AnalysedPaper(p).stems[DEFAULT]:
            freq[s] = freq.get(s, 0) + 1
    return freq


def _analyse(q: Query, cache: dict[Leaf, AnalysedLeaf]) -> Node:
    if isinstance(q, Not):
        return _Not(_analyse(q.child, cache))
    if isinstance(q, And):
        return _All(tuple(_analyse(c, cache) for c in q.children))
    if isinstance(q, Or):
        return _Any(tuple(_analyse(c, cache) for c in q.children))
    leaf = cache.get(q)
    if leaf is None:
        leaf = cache[q] = analyse_leaf(q)
    return leaf


def _holds(n: Node, d: AnalysedPaper) -> bool:
    """The oracle's evaluation: a plain walk using each leaf's own (scanning) test."""
    if isinstance(n, _All):
        return all(_holds(c, d) for c in n.children)
    if isinstance(n, _Any):
        return any(_holds(c, d) for c in n.children)
    if isinstance(n, _Not):
        return not _holds(n.child, d)
    return n.test(d)


def _explain(n: Node, d: AnalysedPaper) -> list[tuple[str, list[Hit]]] | None:
    """(term, hits) of the true positive leaves under `n`, or None when `n` is false."""
    if isinstance(n, _All):
        out: list[tuple[str, list[Hit]]] = []
        for c in n.children:
            part = _explain(c, d)
            if part is None:
                return None
            out.extend(part)
        return out
    if isinstance(n, _Any):
        parts = [p for c in n.children if (p := _explain(c, d)) is not None]
        return [x for p in parts for x in p] if parts else None
    if isinstance(n, _Not):
        return [] if _explain(n.child, d) is None else None
    return [(n.term, n.hits(d))] if n.test(d) else None


def _match(d: AnalysedPaper, rule: RuleKey, node: Node) -> Match:
    found = _explain(node, d)
    if found is None:  # callers only build matches for rules that hold
        raise AssertionError(f"rule {rule!r} does not match paper {d.id!r}")
    terms = tuple(dict.fromkeys(t for t, _ in found))
    hits = sorted({h for _, hs in found for h in hs},
                  key=lambda h: (FIELD_ORDER[h.field], h.start, h.end, h.term))
    return Match(d.id, rule, terms, tuple(hits))


def _single_stem(n: Node) -> bool:
    return isinstance(n, WordLeaf) and len(n.stems) == 1


def _combine(preds: list[Pred], conj: bool) -> Pred:
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        a, b = preds
        return (lambda d: a(d) and b(d)) if conj else (lambda d: a(d) or b(d))
    ps = tuple(preds)
    if conj:
        return lambda d: all(p(d) for p in ps)
    return lambda d: any(p(d) for p in ps)


def _predicate(n: Node) -> Pred:
    """A fast closure equivalent to `_holds(n, ·)`: single-stem terms become set tests, and
    sibling single-stem terms of one field one subset (AND) or intersection (OR) test."""
    if isinstance(n, WordLeaf):
        f = n.f
        if len(n.stems) == 1:
            s = n.stems[0]
            return lambda d: s in d.stems[f]
        need, test = frozenset(n.stems), n.test
        return lambda d: need <= d.stems[f] and test(d)
    if isinstance(n, PrefixLeaf):
        f, prefix = n.f, n.prefix
        return lambda d: any(w.startswith(prefix) for w in d.words[f])
    if isinstance(n, _Not):
        inner = _predicate(n.child)
        return lambda d: not inner(d)
    if isinstance(n, _All | _Any):
        conj = isinstance(n, _All)
        by_field: dict[int, list[str]] = {}
        preds: list[Pred] = []
        for c in n.children:
            if isinstance(c, WordLeaf) and len(c.stems) == 1:
                by_field.setdefault(c.f, []).append(c.stems[0])
            else:
                preds.append(_predicate(c))
        for f, stems in by_field.items():
            preds.insert(0, _set_test(f, frozenset(stems), conj))
        return _combine(preds, conj)
    return n.test


def _set_test(f: int, stems: frozenset[str], conj: bool) -> Pred:
    if len(stems) == 1:
        (s,) = stems
        return lambda d: s in d.stems[f]
    if conj:
        return lambda d: stems <= d.stems[f]
    return lambda d: not stems.isdisjoint(d.stems[f])


class _Costs:
    """How many papers a key is expected to hit: lower is rarer, so a better presearch key."""

    def __init__(self, frequencies: Mapping[str, int] | None) -> None:
        self.freq = frequencies
        self.sorted = sorted(frequencies) if frequencies is not None else []

    def stem(self, s: str) -> float:
        if self.freq is None:  # no statistics: longer stems are usually rarer
            return float(2 ** max(0, 12 - len(s)))
        return float(self.freq.get(s, 0))

    def prefix(self, p: str) -> float:
        if self.freq is None:
            return 4 * self.stem(p)
        q = min(p, stem_word(p), key=len)  # a word's stem may be shorter than the prefix
        lo = bisect.bisect_left(self.sorted, q)
        hi = bisect.bisect_left(self.sorted, q + "\U0010ffff")
        return float(sum(self.freq[s] for s in self.sorted[lo:hi]))


def _keys(n: Node, costs: _Costs) -> tuple[float, list[Key]] | None:
    """A presearch key set for `n` with its cost, or None when `n` cannot be prefiltered."""
    if isinstance(n, WordLeaf):
        s = min(n.stems, key=costs.stem)
        return costs.stem(s), [("w", n.f, s)]
    if isinstance(n, PrefixLeaf):
        return costs.prefix(n.prefix), [("p", n.f, n.prefix)]
    if isinstance(n, SourceLeaf):
        return 1e9, [("s", 0, n.name)]  # every paper of a source has it: a last resort
    if isinstance(n, IdLeaf):
        return 0.0, [("i", 0, n.value)]
    if isinstance(n, _All):
        options = [k for c in n.children if (k := _keys(c, costs)) is not None]
        return min(options, key=lambda k: k[0]) if options else None
    if isinstance(n, _Any):
        total, keys = 0.0, []
        for c in n.children:
            k = _keys(c, costs)
            if k is None:
                return None
            total += k[0]
            keys.extend(k[1])
        return total, keys
    return None  # numeric filters and negations promise no term


def _implied(n: Node) -> bool:
    """True when having one of `n`'s keys already means matching `n`."""
    def exact_key(c: Node) -> bool:
        return _single_stem(c) or isinstance(c, PrefixLeaf | SourceLeaf | IdLeaf)
    return exact_key(n) or (isinstance(n, _Any) and all(exact_key(c) for c in n.children))


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
        self._preds: list[Pred | None] = []  # None: being a candidate means matching
        self._words: list[dict[str, list[int]]] = [{} for _ in range(5)]
        self._prefixes: list[dict[str, list[int]]] = [{} for _ in range(5)]
        self._exact: dict[tuple[str, str], list[int]] = {}
        self.always: list[int] = []
        for ordinal, (_, q) in enumerate(items):
            node = _analyse(q, cache)
            self._nodes.append(node)
            found = _keys(node, costs)
            self._preds.append(None if found is not None and _implied(node) else _predicate(node))
            if found is None:
                self.always.append(ordinal)
                continue
            for kind, f, value in dict.fromkeys(found[1]):
                if kind == "w":
                    self._words[f].setdefault(value, []).append(ordinal)
                elif kind == "p":
                    self._prefixes[f].setdefault(value, []).append(ordinal)
                else:
                    self._exact.setdefault((kind, value), []).append(ordinal)
        lengths = [len(p) for idx in self._prefixes for p in idx]
        self._prefix_range = range(min(lengths, default=0), max(lengths, default=-1) + 1)

    def __len__(self) -> int:
        return len(self.keys)

    def candidates(self, d: AnalysedPaper) -> list[int]:
        """Ordinals (in rule-key order) of the rules that may match `d`: a superset of matches."""
        found: set[int] = set(self.always)
        update = found.update
        for f in range(5):
            words = self._words[f]
            if words:
                for s in d.stems[f]:
                    hit = words.get(s)
                    if hit:
                        update(hit)
            prefixes = self._prefixes[f]
            if prefixes:
                for w in d.words[f]:
                    for n in self._prefix_range:
                        if n > len(w):
                            break
                        hit = prefixes.get(w[:n])
                        if hit:
                            update(hit)
        if self._exact:
            for key in [("i", d.id), *(("s", name) for name in d.source_spans)]:
                update(self._exact.get(key, ()))
        return sorted(found)

    def match(self, papers: Iterable[Paper]) -> list[Match]:
        """Every (paper, rule) that matches, with explanations, sorted by paper id then rule key.
        Each paper is analysed once."""
        out: list[Match] = []
        for paper in sorted(papers, key=lambda p: p.id):
            d = AnalysedPaper(paper)
            for r in self.candidates(d):
                pred = self._preds[r]
                if pred is None or pred(d):
                    out.append(_match(d, self.keys[r], self._nodes[r]))
        return out


def compile_rules(rules: Rules, frequencies: Mapping[str, int] | None = None) -> RuleIndex:
    """Parse (where given as text), analyse and index `rules` once. Keys must be unique (ints, or
    strings; ints sort first). Raises RuleError for the first malformed rule text."""
    return RuleIndex(rules, frequencies)


def match_brute_force(papers: Iterable[Paper], rules: Rules) -> list[Match]:
    """The oracle: every rule evaluated on every paper, no index. Same result as
    `RuleIndex.match`, sorted the same way."""
    items = _prepare(rules)
    cache: dict[Leaf, AnalysedLeaf] = {}
    nodes = [(key, _analyse(q, cache)) for key, q in items]
    out: list[Match] = []
    for paper in sorted(papers, key=lambda p: p.id):
        d = AnalysedPaper(paper)
        out.extend(_match(d, key, node) for key, node in nodes if _holds(node, d))
    return out

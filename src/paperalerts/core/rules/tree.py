"""A rule as a tree of analysed leaves: the oracle's evaluation, the fast compiled checks, and
the explanation of a match. Pure.

Three ways to ask "does rule R match paper P", which must agree:

* `holds` walks the tree with each leaf's own `test` (token scans; the brute-force oracle);
* `check` / `predicate` compile the tree into set operations on the paper's stems (the index);
* `explain` collects the terms and hits of the rule's true positive subtrees (None when false).

An explanation lists the terms that made the rule true: every leaf under a true AND, the true
branches of an OR, nothing under a NOT. A match made only by a negation (``a OR NOT b`` on a
paper with neither) is explained by no terms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, NamedTuple

from paperalerts.core.rules.analysed import (
    DEFAULT,
    AnalysedLeaf,
    AnalysedPaper,
    Hit,
    PrefixLeaf,
    VerbatimLeaf,
    WordLeaf,
    analyse_leaf,
    has_prefix,
    pair,
)
from paperalerts.core.rules.syntax import And, Leaf, Not, Or, Query

RuleKey = int | str
Pred = Callable[[AnalysedPaper], bool]
# What a candidate must still pass. None: nothing; str: that stem in title/abstract; tuple: all
# of those stems there; else call it.
Check = None | str | tuple[str, ...] | Pred


class Match(NamedTuple):
    """`rule` matched paper `paper_id`. `terms` are the rule's terms that made it match (as
    written, with their field: ``title:diffusion``, ``"graph transformer"``, ``upvotes:>=20``),
    in rule order, each once; `hits` where they occur: term by term, each term's hits in field
    order (title, abstract, author, org, source, id), then by offset.

    An immutable NamedTuple rather than a frozen dataclass: a batch makes hundreds of thousands,
    and a NamedTuple is built in less than half the time."""

    paper_id: str
    rule: RuleKey
    terms: tuple[str, ...]
    hits: tuple[Hit, ...]


def explanation_json(match: Match) -> dict[str, Any]:
    """The explanation stored with a match and rendered in emails:
    ``{"terms": [...], "hits": [{"field", "term", "start", "end"}, ...]}``."""
    return {
        "terms": list(match.terms),
        "hits": [{"field": h.field, "term": h.term, "start": h.start, "end": h.end}
                 for h in match.hits],
    }


class Flat(NamedTuple):
    """An AND/OR whose children are leaves or negated leaves, for a short explanation path."""

    positive: tuple[AnalysedLeaf, ...]  # distinct by term, in rule order
    negated: tuple[AnalysedLeaf, ...]


@dataclass(frozen=True, slots=True)
class AllOf:
    children: tuple[Node, ...]
    flat: Flat | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class AnyOf:
    children: tuple[Node, ...]
    flat: Flat | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Negated:
    child: Node


Node = AnalysedLeaf | AllOf | AnyOf | Negated


def _flat(children: tuple[Node, ...]) -> Flat | None:
    positive: dict[str, AnalysedLeaf] = {}  # equal printed terms are equal leaves
    negated: list[AnalysedLeaf] = []
    for c in children:
        if isinstance(c, Negated) and not isinstance(c.child, AllOf | AnyOf | Negated):
            negated.append(c.child)
        elif isinstance(c, AllOf | AnyOf | Negated):
            return None
        else:
            positive.setdefault(c.term, c)
    return Flat(tuple(positive.values()), tuple(negated))


def analyse(q: Query, cache: dict[Leaf, AnalysedLeaf]) -> Node:
    """The tree of `q` with analysed leaves; equal leaves share one object through `cache`."""
    if isinstance(q, Not):
        return Negated(analyse(q.child, cache))
    if isinstance(q, And | Or):
        children = tuple(analyse(c, cache) for c in q.children)
        kind = AllOf if isinstance(q, And) else AnyOf
        return kind(children, _flat(children))
    leaf = cache.get(q)
    if leaf is None:
        leaf = cache[q] = analyse_leaf(q)
    return leaf


def holds(n: Node, d: AnalysedPaper) -> bool:
    """The oracle's evaluation: a plain walk using each leaf's own (scanning) test."""
    if isinstance(n, AllOf):
        return all(holds(c, d) for c in n.children)
    if isinstance(n, AnyOf):
        return any(holds(c, d) for c in n.children)
    if isinstance(n, Negated):
        return not holds(n.child, d)
    return n.test(d)


def leaf_hits(n: AnalysedLeaf, d: AnalysedPaper) -> tuple[Hit, ...] | None:
    """`n.explain(d)`, computed once per paper: many rules share a leaf."""
    cache = d.explained
    if n in cache:
        return cache[n]
    hits = cache[n] = n.explain(d)
    return hits


_Found = list[tuple[str, tuple[Hit, ...]]]


def _explain(n: Node, d: AnalysedPaper) -> _Found | None:
    """(term, hits) of the true positive leaves under `n`, or None when `n` is false."""
    if isinstance(n, AllOf):
        out: _Found = []
        for c in n.children:
            part = _explain(c, d)
            if part is None:
                return None
            out += part
        return out
    if isinstance(n, AnyOf):
        found: _Found | None = None
        for c in n.children:
            part = _explain(c, d)
            if part is not None:
                found = part if found is None else found + part
        return found
    if isinstance(n, Negated):
        return [] if _explain(n.child, d) is None else None
    hits = leaf_hits(n, d)
    return None if hits is None else [(n.term, hits)]


def explain(d: AnalysedPaper, rule: RuleKey, node: Node) -> Match | None:
    """The explained match of `rule` (tree `node`) on `d`, or None when it does not hold. The
    common shapes (a term; an AND or OR of terms and negated terms) take short paths to the same
    result as the general walk."""
    terms: list[str] = []
    hits: list[Hit] = []
    if isinstance(node, AllOf) and node.flat is not None:
        if any(leaf_hits(leaf, d) is not None for leaf in node.flat.negated):
            return None
        for leaf in node.flat.positive:
            h = leaf_hits(leaf, d)
            if h is None:
                return None
            terms.append(leaf.term)
            hits += h
        return Match(d.id, rule, tuple(terms), tuple(hits))
    if isinstance(node, AnyOf) and node.flat is not None:
        by_negation = any(leaf_hits(leaf, d) is None for leaf in node.flat.negated)
        for leaf in node.flat.positive:
            h = leaf_hits(leaf, d)
            if h is not None:
                terms.append(leaf.term)
                hits += h
        return Match(d.id, rule, tuple(terms), tuple(hits)) if terms or by_negation else None
    if not isinstance(node, AllOf | AnyOf | Negated):
        h = leaf_hits(node, d)
        return None if h is None else Match(d.id, rule, (node.term,), h)
    found = _explain(node, d)
    if found is None:
        return None
    seen: dict[str, tuple[Hit, ...]] = {}
    for term, h in found:
        seen.setdefault(term, h)
    return Match(d.id, rule, tuple(seen), tuple(x for h in seen.values() for x in h))


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


def _set_test(f: int, stems: frozenset[str], conj: bool) -> Pred:
    if len(stems) == 1:
        (s,) = stems
        return lambda d: s in d.stems[f]
    if conj:
        return lambda d: stems <= d.stems[f]
    return lambda d: not stems.isdisjoint(d.stems[f])


def predicate(n: Node) -> Pred:
    """A closure equivalent to `holds(n, ·)`: single-stem terms become set tests, and sibling
    single-stem terms of one field a single subset (AND) or intersection (OR) test."""
    if isinstance(n, WordLeaf):
        f = n.f
        if len(n.stems) == 1:
            s = n.stems[0]
            return lambda d: s in d.stems[f]
        pairs = [pair(a, b) for a, b in pairwise(n.stems)]
        if len(pairs) == 1:
            (p,) = pairs
            return lambda d: p in d.pairs[f]
        need, test = frozenset(pairs), n.test
        return lambda d: need <= d.pairs[f] and test(d)
    if isinstance(n, PrefixLeaf):
        f, prefix = n.f, n.prefix
        return lambda d: has_prefix(d.prefixable[f], prefix)
    if isinstance(n, VerbatimLeaf) and len(n.words) == 1:
        f, word = n.f, n.words[0]
        return lambda d: word in d.words[f]
    if isinstance(n, Negated):
        inner = predicate(n.child)
        return lambda d: not inner(d)
    if isinstance(n, AllOf | AnyOf):
        conj = isinstance(n, AllOf)
        by_field: dict[int, list[str]] = {}
        preds: list[Pred] = []
        for c in n.children:
            if isinstance(c, WordLeaf) and len(c.stems) == 1:
                by_field.setdefault(c.f, []).append(c.stems[0])
            else:
                preds.append(predicate(c))
        for f, stems in by_field.items():
            preds.insert(0, _set_test(f, frozenset(stems), conj))
        return _combine(preds, conj)
    return n.test


def check(n: Node) -> Check:
    """The `Check` for `n`. The two commonest, "this stem" and "all these stems" in title or
    abstract, are plain data tested inline by the index: with 100k rules a closure call per
    candidate costs mostly cache misses."""
    def default_stem(c: Node) -> str | None:
        simple = isinstance(c, WordLeaf) and c.f == DEFAULT and len(c.stems) == 1
        return c.stems[0] if simple and isinstance(c, WordLeaf) else None

    if (s := default_stem(n)) is not None:
        return s
    if isinstance(n, AllOf):
        found = [default_stem(c) for c in n.children]
        if all(s is not None for s in found):
            return tuple(dict.fromkeys(s for s in found if s is not None))
    return predicate(n)

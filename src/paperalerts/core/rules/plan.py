"""How a matched rule is explained, decided once per rule when the index is built. Pure.

`tree.explain` walks a rule's tree for every match; with thousands of matches per paper that walk
is most of the cost of an explained match. Knowing the rule *matched* settles most of it in
advance (DESIGN §6: the terms of the true positive subtrees, each once, in rule order):

* a term, or an AND of terms and negated terms: every positive term, always. The explanation
  is a constant, so its terms (and their JSON) are computed here, once;
* an OR of terms, or an AND whose children are terms, negated terms and ORs of those (a CNF
  rule): every positive term *that holds on the paper* (each such term sits in a true OR under
  a true AND). One truth lookup per term, cached per paper;
* anything else (an AND under an OR, a group under a negation): the general tree walk.

`Plan.leaves` are the candidate terms, distinct by printed term, in rule order. The truth of a
leaf comes from `Truth`, a per-paper cache of each leaf's fast test (`tree.predicate`), and
agrees with the oracle's `leaf.explain(d) is not None`: the property test index == brute force
pins it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import NamedTuple

from paperalerts.core.rules.analysed import DEFAULT, AnalysedLeaf, AnalysedPaper, WordLeaf
from paperalerts.core.rules.tree import AllOf, AnyOf, Negated, Node, predicate

CONST, FILTER, GENERAL = range(3)


class Plan(NamedTuple):
    """`kind` CONST: the explanation is `leaves`; FILTER: the `leaves` that hold; GENERAL: walk
    `node`. `jsons` are the leaves' terms as JSON strings; `terms_json` the JSON array of them
    all (the explanation of a CONST plan)."""

    kind: int
    leaves: tuple[AnalysedLeaf, ...]
    node: Node
    jsons: tuple[str, ...] = ()
    terms_json: str = "[]"
    # FILTER plans whose leaves are all single words of the default field: the stem of each
    # leaf (aligned with `jsons`): a leaf holds iff its stem is among the paper's title and
    # abstract stems
    stems: tuple[str, ...] | None = None


def term_json(term: str) -> str:
    """A term as a JSON string, spelled as ``json.dumps(..., ensure_ascii=False)`` spells it."""
    return json.dumps(term, ensure_ascii=False)


def _distinct(leaves: list[AnalysedLeaf]) -> tuple[AnalysedLeaf, ...]:
    first: dict[str, AnalysedLeaf] = {}  # equal printed terms are equal leaves
    for leaf in leaves:
        first.setdefault(leaf.term, leaf)
    return tuple(first.values())


def plan(node: Node) -> Plan:
    """The explanation plan of a rule's tree (see the module docstring)."""
    if isinstance(node, Negated):
        return Plan(GENERAL, (), node)
    if not isinstance(node, AllOf | AnyOf):
        j = term_json(node.term)
        return Plan(CONST, (node,), node, (j,), f"[{j}]")
    found: list[AnalysedLeaf] = []
    const = isinstance(node, AllOf)
    for c in node.children:
        if isinstance(c, Negated):
            continue  # a negation contributes no term, and the rule is known to hold
        if isinstance(c, AnyOf) and isinstance(node, AllOf):
            const = False
            for g in c.children:
                if isinstance(g, AllOf | AnyOf):
                    return Plan(GENERAL, (), node)
                if not isinstance(g, Negated):
                    found.append(g)
        elif isinstance(c, AllOf | AnyOf):
            return Plan(GENERAL, (), node)
        else:
            found.append(c)
    leaves = _distinct(found)
    jsons = tuple(term_json(x.term) for x in leaves)
    simple = all(isinstance(x, WordLeaf) and x.f == DEFAULT and len(x.stems) == 1 for x in leaves)
    stems = tuple(x.stems[0] for x in leaves if isinstance(x, WordLeaf))
    return Plan(CONST if const else FILTER, leaves, node, jsons, "[" + ", ".join(jsons) + "]",
                None if const or not simple else stems)


class Truth(dict[AnalysedLeaf, bool]):
    """leaf -> whether it holds on one paper, each computed once with the leaf's fast test."""

    __slots__ = ("d", "tests")

    def __init__(
        self, d: AnalysedPaper, tests: dict[AnalysedLeaf, Callable[[AnalysedPaper], bool]]
    ) -> None:
        super().__init__()
        self.d, self.tests = d, tests

    def __missing__(self, leaf: AnalysedLeaf) -> bool:
        test = self.tests.get(leaf)
        if test is None:
            test = self.tests[leaf] = predicate(leaf)
        value = self[leaf] = test(self.d)
        return value

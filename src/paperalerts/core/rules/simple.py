"""Plain rules compiled straight to their index entries, skipping the general machinery. Pure.

Most alert rules are words, ANDs of words and ORs of words over title and abstract
(``mamba (video OR audio)``): a conjunction of groups, each group an OR of single words. For
such a rule `compile_simple` gives what the general path (`tree.analyse`, `engine._presearch`,
`tree.check`, `plan.plan`) would, in a few microseconds instead of some forty: its presearch
keys (the stems of its cheapest group), what a paper found through them must still pass (the
stems of the single-word groups, all present; each other group, one of its stems present), and
its explanation (a constant when every group is one word, else the words whose stems the paper
has). The results are identical; the property test index == brute force covers both paths.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from paperalerts.core.rules.plain import plain_groups
from paperalerts.core.rules.plan import term_json
from paperalerts.core.rules.syntax import And, Or, Query, Term
from paperalerts.core.rules.text import stem, words

HaveCheck = Callable[[set[str]], bool]


class Word(NamedTuple):
    """A rule word that analyses into one stem, with its JSON and its presearch cost."""

    stem: str
    json: str
    cost: float


# What a paper found through a rule's keys must still pass, tested on its title and abstract
# stems `have`: NOTHING; ALL of a frozenset; ANY of a frozenset; OTHER, a HaveCheck.
NOTHING, ALL, ANY, OTHER = range(4)


class SimpleRule(NamedTuple):
    keys: tuple[str, ...]  # default-field stems: a matching paper has one of them
    check: int  # NOTHING, ALL, ANY or OTHER
    check_data: frozenset[str] | HaveCheck | None
    terms_json: str  # the explanation's JSON terms when constant, else ""
    stems: tuple[str, ...]  # else: the stem of each distinct word, in rule order,
    jsons: tuple[str, ...]  # and its JSON; the explanation is those the paper has


def _groups(q: Query | str) -> list[list[str]] | None:
    if isinstance(q, str):
        return plain_groups(q)
    if isinstance(q, Term):
        return [[q.text]] if q.field is None else None
    items = q.children if isinstance(q, And) else (q,) if isinstance(q, Or) else ()
    out: list[list[str]] = []
    for c in items:
        if isinstance(c, Term) and c.field is None:
            out.append([c.text])
        elif isinstance(c, Or) and all(isinstance(g, Term) and g.field is None
                                       for g in c.children):
            out.append([g.text for g in c.children])  # type: ignore[union-attr]
        else:
            return None
    return out or None


def compile_simple(
    q: Query | str,
    groups: list[list[str]] | None,
    cost: Callable[[str], float],
    seen: dict[str, Word | None],
) -> SimpleRule | None:
    """`q` (parsed, or rule text) compiled when it is plain (see the module docstring), else
    None. `groups` are its words when known (`syntax.plain_groups`); `cost` is the presearch
    cost of a stem; `seen` memoises each word's analysis across rules."""
    if groups is None:
        groups = _groups(q)
    if groups is None:
        return None
    analysed: list[list[Word]] = []
    texts: dict[str, Word] = {}  # distinct words as written, in rule order
    best, best_cost = 0, float("inf")
    for g in groups:
        group = []
        group_cost = 0.0
        for text in g:
            if text in seen:
                w = seen[text]
            else:
                split = words(text)
                s = stem(split[0]) if len(split) == 1 else None
                w = seen[text] = None if s is None else Word(s, term_json(text), cost(s))
            if w is None:
                return None
            group.append(w)
            group_cost += w.cost
            if text not in texts:
                texts[text] = w
        if group_cost < best_cost:
            best, best_cost = len(analysed), group_cost
        analysed.append(group)
    keys = tuple({w.stem: None for w in analysed[best]})
    need: list[str] = []
    anyof: list[frozenset[str]] = []
    for i, ws in enumerate(analysed):
        if i != best:  # the key's group holds if the paper was found; the others must
            if len(ws) == 1:
                need.append(ws[0].stem)
            else:
                anyof.append(frozenset([w.stem for w in ws]))
    data: frozenset[str] | HaveCheck | None = None
    if anyof:
        check, data = (ANY, anyof[0]) if len(anyof) == 1 and not need else (
            OTHER, _all_and_any(frozenset(need), tuple(anyof)))
    else:
        check, data = (ALL, frozenset(need)) if need else (NOTHING, None)
    distinct = list(texts.values())
    jsons = tuple([w.json for w in distinct])
    if all(len(g) == 1 for g in analysed):
        return SimpleRule(keys, check, data, "[" + ", ".join(jsons) + "]", (), ())
    return SimpleRule(keys, check, data, "", tuple([w.stem for w in distinct]), jsons)


def _all_and_any(need: frozenset[str], anyof: tuple[frozenset[str], ...]) -> HaveCheck:
    """A test of a paper's title and abstract stems `have`: all of `need`, one of each `anyof`.
    The common shapes get their own closure: a generator costs more than the set operations."""
    if len(anyof) == 1:
        (one,) = anyof
        return lambda have: need <= have and not one.isdisjoint(have)
    if len(anyof) == 2 and not need:
        one, two = anyof
        return lambda have: not one.isdisjoint(have) and not two.isdisjoint(have)
    return lambda have: need <= have and not any(g.isdisjoint(have) for g in anyof)

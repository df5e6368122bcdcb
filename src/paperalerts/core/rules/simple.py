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
            w = seen.get(text, _UNSEEN)
            if w is _UNSEEN:
                w = seen[text] = _word(text, cost)
            if w is None:
                return None
            group.append(w)
            group_cost += w[2]
            texts.setdefault(text, w)
        if group_cost < best_cost:
            best, best_cost = len(analysed), group_cost
        analysed.append(group)
    key_group = analysed[best]
    keys = (key_group[0][0],) if len(key_group) == 1 else tuple({w[0]: None for w in key_group})
    need: list[str] = []
    anyof: list[frozenset[str]] = []
    singles = True
    for i, ws in enumerate(analysed):
        if len(ws) == 1:
            if i != best:  # the key's group holds if the paper was found; the others must
                need.append(ws[0][0])
        else:
            singles = False
            if i != best:
                anyof.append(frozenset([w[0] for w in ws]))
    data: frozenset[str] | HaveCheck | None = None
    if anyof:
        check, data = (ANY, anyof[0]) if len(anyof) == 1 and not need else (
            OTHER, _all_and_any(frozenset(need), tuple(anyof)))
    else:
        check, data = (ALL, frozenset(need)) if need else (NOTHING, None)
    distinct = texts.values()
    jsons = tuple([w[1] for w in distinct])
    if singles:
        return SimpleRule(keys, check, data, "[" + ", ".join(jsons) + "]", (), ())
    return SimpleRule(keys, check, data, "", tuple([w[0] for w in distinct]), jsons)


_UNSEEN = Word("", "", 0.0)  # not yet in `seen`


def _word(text: str, cost: Callable[[str], float]) -> Word | None:
    split = words(text)
    if len(split) != 1:
        return None
    s = stem(split[0])
    return Word(s, term_json(text), cost(s))


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

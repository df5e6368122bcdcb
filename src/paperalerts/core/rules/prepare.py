"""Rules and papers made ready for the index: parsing with a cache carried between builds,
key order, and a pause of the garbage collector around allocation-heavy work. Pure."""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from paperalerts.core.papers import Paper
from paperalerts.core.rules.analysed import AnalysedLeaf, AnalysedPaper
from paperalerts.core.rules.plain import plain_groups
from paperalerts.core.rules.syntax import Leaf, Query, parse
from paperalerts.core.rules.tree import RuleKey

Rules = Iterable[tuple[RuleKey, str | Query]]


def rule_order(key: RuleKey) -> tuple[bool, int | str]:
    return (isinstance(key, str), key)


Prepared = tuple[str | Query, list[list[str]] | None]


class ParsedRules(dict[str, Prepared]):
    """rule text -> what `compile_rules` made of it (its plain groups, or its AST). Give one to
    successive `compile_rules` calls, as the pipeline does when it rebuilds its index after a
    rule changed, so unchanged rules are not parsed again; `leaves` likewise keeps each leaf's
    analysis. Entries no rule uses any more are dropped at the next build."""

    def __init__(self) -> None:
        super().__init__()
        self.leaves: dict[Leaf, AnalysedLeaf] = {}


def prepare(
    rules: Rules, parsed: ParsedRules | None = None
) -> list[tuple[RuleKey, str | Query, list[list[str]] | None]]:
    """The rules sorted by key, each with its plain groups (`syntax.plain_groups`) when it is
    plain text; other texts are parsed (RuleError for the first malformed one). A plain rule is
    valid by construction: `compile_simple` reads its groups, `RuleIndex.query` parses it on
    demand."""
    items: dict[RuleKey, Prepared] = {}
    known = parsed if parsed is not None else {}
    fresh: dict[str, Prepared] = {}
    for key, rule in rules:
        if key in items:
            raise ValueError(f"duplicate rule key {key!r}")
        if not isinstance(rule, str):
            items[key] = (rule, None)
            continue
        done = fresh.get(rule) or known.get(rule)
        if done is None:
            groups = plain_groups(rule)
            done = (rule if groups is not None else parse(rule), groups)
        items[key] = fresh[rule] = done
    if parsed is not None:
        parsed.clear()
        parsed.update(fresh)
    keys = list(items)
    if not (all(type(k) is int for k in keys) and keys == sorted(keys)):  # else in order
        keys.sort(key=rule_order)
    return [(key, *items[key]) for key in keys]


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a while. Building an index, or matching a paper,
    makes many small objects (postings, matches, hits) and no reference cycles; with an index's
    hundreds of thousands of objects on the heap each collection they trigger walks them all
    (two thirds of `match`'s time, half of a build's). Memory is reclaimed by reference
    counting as usual; the collector resumes after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def analysed(p: Paper | AnalysedPaper) -> AnalysedPaper:
    return p if isinstance(p, AnalysedPaper) else AnalysedPaper(p)

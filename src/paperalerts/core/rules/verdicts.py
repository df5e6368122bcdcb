"""Changed verdicts: which matches of re-listed papers are news. Pure.

A paper that comes back with new values (more upvotes, a corrected abstract, listed by one more
source) is an *update*. It reaches a subscriber only through a rule whose verdict turned from
false to true because of the change: ``upvotes:>=50`` when the paper crossed 50, ``diffusion``
when the corrected abstract now holds the word. A rule that matched the previous values as well
matched all along (the paper was already delivered, or it was part of a source's baseline, which
raises no alerts), so the update is not news for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from paperalerts.core.papers import Paper
from paperalerts.core.rules.engine import RuleIndex, match_brute_force
from paperalerts.core.rules.prepare import Rules
from paperalerts.core.rules.tree import Match, RuleKey


def turned_true(
    index: RuleIndex, papers: Iterable[Paper], previous: Mapping[str, Paper]
) -> list[Match]:
    """`index.match(papers)` without the matches whose rule also matches the paper's previous
    value. `previous` holds the values before the change of updated papers; a paper absent
    from it is new, and all its matches count. Only papers that match something now are
    checked against their previous value, so an update costs little more than a new paper."""
    now = index.match(papers)
    was: dict[str, set[RuleKey]] = {}
    for hit in now:
        prev = previous.get(hit.paper_id)
        if prev is not None and hit.paper_id not in was:
            was[hit.paper_id] = set(index.matching_rules(prev))
    if not was:
        return now
    return [h for h in now if h.rule not in was.get(h.paper_id, ())]


def turned_true_brute_force(
    papers: Iterable[Paper], previous: Mapping[str, Paper], rules: Rules
) -> list[Match]:
    """The oracle of `turned_true`: every rule on every paper and on every previous value."""
    rules = list(rules)
    before = {(m.paper_id, m.rule) for m in match_brute_force(previous.values(), rules)}
    return [m for m in match_brute_force(papers, rules) if (m.paper_id, m.rule) not in before]

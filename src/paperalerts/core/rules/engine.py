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
operations on the paper's stems (`tree.check`), run in C where they can (map/compress over
a paper's candidates). The keys are chosen by `presearch`; plain rules (words, ANDs, ORs of
words) skip the general machinery (`simple`).

A match is explained from its rule's `plan`, made once per rule: constant for a term or an AND,
else the rule's terms the paper has (no tree walk per match). `render` prints matches as text,
a constant explanation's line made once per rule.

``match_brute_force`` is the oracle: every rule, every paper, a plain tree walk over the leaves'
own tests (token scans, no sets, no index; `tree.holds`), explained by `tree.explain`. The
contract, checked by property tests: ``RuleIndex.match(papers) == match_brute_force(papers,
rules)`` for every input.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import compress
from operator import not_

from paperalerts.core.papers import Paper
from paperalerts.core.rules.analysed import (
    DEFAULT,
    AnalysedLeaf,
    AnalysedPaper,
    Hit,
)
from paperalerts.core.rules.plan import CONST, FILTER, Plan, Truth, plan, term_json
from paperalerts.core.rules.prepare import (
    ParsedRules,
    Rules,
    analysed,
    gc_paused,
    prepare,
)
from paperalerts.core.rules.presearch import Costs, presearch
from paperalerts.core.rules.simple import (
    ALL,
    ANY,
    NOTHING,
    OTHER,
    HaveCheck,
    Word,
    compile_simple,
)
from paperalerts.core.rules.syntax import Leaf, Query, parse
from paperalerts.core.rules.tree import (
    Match,
    Node,
    Pred,
    RuleKey,
    analyse,
    check,
    explain,
    holds,
    leaf_hits,
    predicate,
)


def term_frequencies(papers: Iterable[Paper | AnalysedPaper]) -> dict[str, int]:
    """Document frequency of each stem in the papers' titles and abstracts: pass it to
    `compile_rules` (computed over recent papers) so the presearch picks truly rare terms."""
    freq: dict[str, int] = {}
    for p in papers:
        for s in analysed(p).stems[DEFAULT]:
            freq[s] = freq.get(s, 0) + 1
    return freq


# Postings hold a rule's ordinal r when being found is matching; r + ALL_OF when the paper's
# title and abstract stems must still include the rule's `_stem_checks[r]`, r + ANY_OF when
# they must meet it, r + TEST when they must pass it; and ~r (negative) when the paper must
# pass the general `_checks[r]`. Sorting a paper's postings sorts them by what they need.
ALL_OF, ANY_OF, TEST = 1 << 27, 2 << 27, 3 << 27  # all below 2**30: a fast sort
_OFFSETS = {NOTHING: 0, ALL: ALL_OF, ANY: ANY_OF, OTHER: TEST}


class RuleIndex:
    """Compiled rules with their presearch index; build with `compile_rules`, reuse for many
    `match` calls. Immutable after construction."""

    def __init__(
        self,
        rules: Rules,
        frequencies: Mapping[str, int] | None = None,
        parsed: ParsedRules | None = None,
    ) -> None:
        with gc_paused():
            self._build(rules, frequencies, parsed)

    def _build(
        self, rules: Rules, frequencies: Mapping[str, int] | None, parsed: ParsedRules | None
    ) -> None:
        items = prepare(rules, parsed)
        if len(items) >= ALL_OF:
            raise ValueError(f"an index holds fewer than {ALL_OF:,} rules")
        costs = Costs(frequencies)
        self._cache: dict[Leaf, AnalysedLeaf] = {} if parsed is None else parsed.leaves
        if len(self._cache) > 8 * len(items) + 1000:  # mostly leaves of rules long gone
            self._cache.clear()
        self.keys: list[RuleKey] = [k for k, _, _ in items]
        self._rules: list[str | Query] = [q for _, q, _ in items]
        self._plans: list[Plan | None] = []  # per rule, how a match is explained (made lazily)
        # per rule, its explanation's JSON when constant, else "" and: the stems and JSON terms
        # of its words (those the paper has explain it), or ordinal in `_slow` (ask its plan)
        self._terms_json: list[str] = []
        self._stems: list[tuple[str, ...]] = []
        self._jsons: list[tuple[str, ...]] = []
        self._slow: set[int] = set()
        self._tests: dict[AnalysedLeaf, Pred] = {}  # per leaf, its fast test (filled lazily)
        # per rule, what a candidate must still pass (see ALL_OF)
        self._checks: list[frozenset[str] | Pred | None] = []
        self._stem_checks: list[frozenset[str] | HaveCheck | None] = []
        self._words: list[dict[str, list[int]]] = [{} for _ in range(5)]
        self._pairs: list[dict[str, list[int]]] = [{} for _ in range(5)]
        self._prefixes: list[dict[str, list[int]]] = [{} for _ in range(5)]
        self._exact: dict[tuple[str, str], list[int]] = {}
        self.always: list[int] = []
        seen: dict[str, Word | None] = {}
        # ordinals made in one go sit together in memory: candidate sets hash and sort them
        # without a cache miss per rule
        ordinals = list(range(len(items)))
        for ordinal, (_, q, groups) in zip(ordinals, items, strict=True):
            simple = compile_simple(q, groups, costs.stem, seen)
            if simple is not None:
                self._plans.append(None)
                self._terms_json.append(simple.terms_json)
                self._stems.append(simple.stems)
                self._jsons.append(simple.jsons)
                self._checks.append(None)
                self._stem_checks.append(simple.check_data)
                posted = ordinal + _OFFSETS[simple.check]
                index = self._words[DEFAULT]
                for s in simple.keys:
                    index.setdefault(s, []).append(posted)
                continue
            self._stem_checks.append(None)
            if isinstance(q, str):  # only plain rules are left unparsed, and they are simple
                raise AssertionError(f"rule {q!r} was not compiled as plain")
            node = analyse(q, self._cache)
            p = plan(node)
            self._plans.append(p)
            self._terms_json.append(p.terms_json if p.kind == CONST else "")
            self._stems.append(p.stems or ())
            self._jsons.append(p.jsons if p.stems is not None else ())
            if p.kind != CONST and p.stems is None:
                self._slow.add(ordinal)
            found = presearch(node, costs)
            if found is None:
                self._checks.append(predicate(node))
                self.always.append(ordinal)
                continue
            residual = found.residual
            if residual is None:
                self._checks.append(None)
            else:
                rest = check(residual)
                self._checks.append(frozenset((rest,) if isinstance(rest, str) else rest)
                                    if isinstance(rest, str | tuple) else rest)
                ordinal = ~ordinal  # posted negative: found, it must still pass its check
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

    def query(self, r: int) -> Query:
        """The parsed rule of ordinal `r` (a plain rule given as text is parsed here)."""
        q = self._rules[r]
        return parse(q) if isinstance(q, str) else q

    @property
    def queries(self) -> list[Query]:
        """Every parsed rule, in key order."""
        return [self.query(r) for r in range(len(self._rules))]

    def candidates(self, d: AnalysedPaper) -> list[int]:
        """Ordinals (in rule-key order) of the rules that may match `d`: a superset of matches."""
        return sorted({r % ALL_OF if r >= 0 else ~r for r in self._postings(d)})

    def _postings(self, d: AnalysedPaper) -> list[int]:
        """The candidates as posted (see ALL_OF: the ordinal, offset by what the rule must still
        pass), a rule with several keys once per key found."""
        found: list[int] = [~r for r in self.always]
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
        return found

    def match(self, papers: Iterable[Paper]) -> list[Match]:
        """Every (paper, rule) that matches, with explanations, sorted by paper id then rule key.
        Each paper is analysed once."""
        out: list[Match] = []
        with gc_paused():
            for paper in sorted(papers, key=lambda p: p.id):
                d = AnalysedPaper(paper)
                truth = Truth(d, self._tests)
                out += [self._explained(d, truth, r) for r in self._matching(d)]
        return out

    def match_terms_json(
        self, papers: Iterable[Paper | AnalysedPaper]
    ) -> Iterator[tuple[str, list[RuleKey], list[str]]]:
        """Per paper, sorted by id: its id, the keys of the rules it matches (in key order) and
        each match's terms as a JSON array (``'["diffusion", "video"]'``, spelled as
        ``json.dumps(list(m.terms), ensure_ascii=False)``): `match` without the hits.
        Papers may come analysed (as `term_frequencies` needed them), to analyse them once."""
        opened = ["["] * len(self.keys)
        for d in sorted(map(analysed, papers), key=lambda d: d.id):
            with gc_paused():
                found = self._matching(d)
                terms = self._texts(d, found, self._terms_json, opened, "]")
            yield d.id, [self.keys[r] for r in found], terms

    def render(
        self,
        papers: Iterable[Paper | AnalysedPaper],
        paper_head: Callable[[str], str],
        rule_head: Callable[[RuleKey], str],
        end: str,
    ) -> Iterator[str]:
        """Every match as text: per paper (sorted by id) with a match, one string holding its
        matches in rule-key order, each ``paper_head(paper id) + rule_head(rule key) + terms +
        end``, terms the match's JSON array of terms (as in `match_terms_json`). With
        ``paper_head=lambda p: '{"paper": ' + json.dumps(p) + ', "rule": '``,
        ``rule_head=lambda k: f'{k}, "terms": '`` and ``end="}\\n"`` that is JSON lines.

        For printing millions of matches: the text of a rule whose explanation is constant is
        made once here, so such a match costs one list item; others cost a join of the JSON of
        those of their terms the paper has."""
        whole = [rule_head(k) + t + end if t else ""
                 for k, t in zip(self.keys, self._terms_json, strict=True)]
        opened = [rule_head(k) + "[" if not t else ""
                  for k, t in zip(self.keys, self._terms_json, strict=True)]
        for d in sorted(map(analysed, papers), key=lambda d: d.id):
            with gc_paused():
                found = self._matching(d)
                text = paper_head(d.id).join(["", *self._texts(d, found, whole, opened,
                                                                "]" + end)]) if found else ""
            if text:
                yield text

    def _texts(
        self, d: AnalysedPaper, found: list[int], whole: list[str], opened: list[str], close: str
    ) -> list[str]:
        """Per match (rule ordinals `found`), ``whole[r]`` when not empty (the rule's constant
        text), else ``opened[r]`` + the JSON terms found, comma-separated, + `close`."""
        stems, jsons, slow = self._stems, self._jsons, self._slow
        has = d.stems[DEFAULT].__contains__
        # the terms whose stems the paper has: map and compress loop in C
        texts = [whole[r] or opened[r] + ", ".join(compress(jsons[r], map(has, stems[r]))) + close
                 for r in found]
        if slow and not slow.isdisjoint(found):
            truth = Truth(d, self._tests)
            for i, r in enumerate(found):
                if r in slow:
                    texts[i] = opened[r] + self._terms_json_of(d, truth, r)[1:-1] + close
        return texts

    def _plan(self, r: int) -> Plan:
        p = self._plans[r]
        if p is None:
            p = self._plans[r] = plan(analyse(self.query(r), self._cache))
        return p

    def _terms_json_of(self, d: AnalysedPaper, truth: Truth, r: int) -> str:
        p = self._plan(r)
        if p.kind == FILTER:
            found = [j for x, j in zip(p.leaves, p.jsons, strict=True) if truth[x]]
        else:
            found = [term_json(t) for t in _explained(d, self.keys[r], p.node).terms]
        return "[" + ", ".join(found) + "]"

    def _explained(self, d: AnalysedPaper, truth: Truth, r: int) -> Match:
        p = self._plan(r)
        if p.kind == CONST:
            leaves = p.leaves
        elif p.kind == FILTER:
            leaves = tuple(x for x in p.leaves if truth[x])
        else:
            return _explained(d, self.keys[r], p.node)
        hits: list[Hit] = []
        for x in leaves:
            h = leaf_hits(x, d)
            if h is None:  # only asked for rules found to hold: the evaluations disagree
                raise AssertionError(f"rule {self.keys[r]!r} holds on {d.id!r} without {x.term}")
            hits += h
        return Match(d.id, self.keys[r], tuple(x.term for x in leaves), tuple(hits))

    def matching_rules(self, paper: Paper) -> list[RuleKey]:
        """The keys of the rules `paper` matches, in key order, without explanations: for
        counting, or to skip pairs already stored before paying for their explanations."""
        keys = self.keys
        return [keys[r] for r in self._matching(AnalysedPaper(paper))]

    def _matching(self, d: AnalysedPaper) -> list[int]:
        """Ordinals of the rules matching `d`, sorted. (Lists, sets and a sort run in C; only the
        candidates that need a check cost a Python step each.)"""
        found = self._postings(d)
        found.sort()
        lo = bisect.bisect_left(found, 0)
        at = [bisect.bisect_left(found, offset, lo) for offset in (ALL_OF, ANY_OF, TEST)]
        out = set(found[lo : at[0]])
        have = d.stems[DEFAULT]
        data = self._stem_checks
        if at[0] < at[1]:  # all of these stems: map and compress run in C
            rs = list(map(ALL_OF.__rsub__, found[at[0] : at[1]]))
            out.update(compress(rs, map(have.issuperset, map(data.__getitem__, rs))))  # type: ignore[arg-type]
        if at[1] < at[2]:  # one of these stems
            rs = list(map(ANY_OF.__rsub__, found[at[1] : at[2]]))
            out.update(compress(rs, map(not_, map(have.isdisjoint, map(data.__getitem__, rs)))))  # type: ignore[arg-type]
        if at[2] < len(found):
            out.update([r for r in map(TEST.__rsub__, found[at[2] :]) if data[r](have)])  # type: ignore[operator,misc]
        if lo:
            checks = self._checks
            for r in set(found[:lo]):
                c = checks[~r]
                if have.issuperset(c) if isinstance(c, frozenset) else c(d):  # type: ignore[misc]
                    out.add(~r)
        return sorted(out)


def compile_rules(
    rules: Rules, frequencies: Mapping[str, int] | None = None, parsed: ParsedRules | None = None
) -> RuleIndex:
    """Parse (where given as text), analyse and index `rules` once. Keys must be unique (ints, or
    strings; ints sort first). Raises RuleError for the first malformed rule text. `parsed`
    carries parsed rules from one build to the next (see `ParsedRules`)."""
    return RuleIndex(rules, frequencies, parsed)


def match_with_index(
    papers: Iterable[Paper], rules: Rules, frequencies: Mapping[str, int] | None = None
) -> list[Match]:
    """``compile_rules(rules, frequencies).match(papers)``, under the name the pipeline uses."""
    return compile_rules(rules, frequencies).match(papers)


def match_brute_force(papers: Iterable[Paper], rules: Rules) -> list[Match]:
    """The oracle: every rule evaluated on every paper, no index. Same result as
    `RuleIndex.match`, sorted the same way."""
    items = prepare(rules)
    cache: dict[Leaf, AnalysedLeaf] = {}
    nodes = [(key, analyse(parse(q) if isinstance(q, str) else q, cache)) for key, q, _ in items]
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

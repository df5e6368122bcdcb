"""A paper analysed once for matching, and the analysed leaves of a rule. Pure.

`AnalysedPaper` tokenises and stems each text field of a `Paper` once, when a rule first needs
it; every candidate rule then reads its sets (fast checks), its word lists (phrases, prefixes) and,
for highlights only, its word offsets.

Fields, and what a hit's ``start``/``end`` are offsets into:

* ``title``, ``abstract``, ``org``: `Paper.title`, `Paper.abstract`, `Paper.organization`;
* ``author``: ``AUTHOR_SEPARATOR.join(paper.authors)``; each author is its own value, so a
  phrase never runs from one author's name into the next;
* ``source``: ``", ".join(source_names(paper))`` (`Paper.source` plus ``extra["sources"]``);
* ``id``: `Paper.id`.

The default field (no ``field:``) is title and abstract, each a separate value: a phrase never
runs from the end of the title into the abstract.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from itertools import chain, pairwise
from typing import NamedTuple, TypeVar

from paperalerts.core.papers import Paper, normalize_arxiv_id
from paperalerts.core.rules.syntax import (
    Exact,
    Leaf,
    Numeric,
    Phrase,
    Prefix,
    Term,
    Verbatim,
    leaf_text,
)
from paperalerts.core.rules.text import spans, stems, words

AUTHOR_SEPARATOR = ", "
SOURCE_SEPARATOR = ", "

# Field codes index the per-field tuples below; DEFAULT is title + abstract.
DEFAULT, TITLE, ABSTRACT, AUTHOR, ORG = range(5)
FIELD_CODES = {None: DEFAULT, "title": TITLE, "abstract": ABSTRACT, "author": AUTHOR, "org": ORG}

_COMPARE: dict[str, Callable[[int, int], bool]] = {
    ">=": int.__ge__, "<=": int.__le__, ">": int.__gt__, "<": int.__lt__, "=": int.__eq__,
}


def pair(a: str, b: str) -> str:
    """The key of two adjacent stems (stems never contain a space)."""
    return f"{a} {b}"


def has_prefix(sorted_words: list[str], prefix: str) -> bool:
    """Whether a word in `sorted_words` starts with `prefix`."""
    i = bisect_left(sorted_words, prefix)
    return i < len(sorted_words) and sorted_words[i].startswith(prefix)


class Hit(NamedTuple):
    """Where a rule term hit: `field` and ``[start, end)`` in that field's display text."""

    field: str
    term: str
    start: int
    end: int


class _Value:
    """One field value (a title, one author's name, ...): its words and stems, and the offsets
    of its words (computed only when a hit is highlighted)."""

    __slots__ = ("_spans", "field", "offset", "stems", "text", "words")

    def __init__(self, field: str, offset: int, text: str) -> None:
        self.field, self.offset, self.text = field, offset, text
        self.words = words(text)
        self.stems = stems(self.words)
        self._spans: list[tuple[int, int]] | None = None

    def spans(self) -> list[tuple[int, int]]:
        """``(start, end)`` of each word in `text`."""
        if self._spans is None:
            self._spans = spans(self.text)
        return self._spans

    def span(self, i: int, j: int) -> tuple[int, int]:
        """``[start, end)`` in the field's display text of words ``i`` through ``j``."""
        sp = self.spans()
        return self.offset + sp[i][0], self.offset + sp[j][1]


_T = TypeVar("_T")


class _PerField(dict[int, _T]):
    """field code -> value, computed on first access (most rules only read title and abstract)."""

    def __init__(self, make: Callable[[int], _T]) -> None:
        super().__init__()
        self.make = make

    def __missing__(self, f: int) -> _T:
        value = self[f] = self.make(f)
        return value


def source_names(paper: Paper) -> list[str]:
    """`Paper.source` and the names in ``extra["sources"]``; first occurrence kept, "" dropped."""
    extra = paper.extra.get("sources", [])
    names = [paper.source, *([extra] if isinstance(extra, str) else extra)]
    return list(dict.fromkeys(n for n in names if isinstance(n, str) and n))


class AnalysedPaper:
    """One paper's fields tokenised and stemmed once, lazily per field code `f` (see the module
    docstring for what hit offsets refer to): `values[f]` the field values; `stems[f]`,
    `words[f]` and `pairs[f]` (adjacent stems) sets; `prefixable[f]` the sorted words;
    `positions[f]` where each stem occurs. `explained` caches each rule leaf's hits."""

    __slots__ = ("comments", "explained", "id", "pairs", "paper", "positions", "prefixable",
                 "source_spans", "stems", "upvotes", "values", "words")

    def __init__(self, paper: Paper) -> None:
        self.paper = paper
        self.id = paper.id
        self.upvotes = paper.upvotes
        self.comments = paper.comments
        self.values: _PerField[list[_Value]] = _PerField(self._values)
        self.stems: _PerField[set[str]] = _PerField(
            lambda f: set(chain.from_iterable(v.stems for v in self.values[f]))
        )
        self.words: _PerField[set[str]] = _PerField(
            lambda f: set(chain.from_iterable(v.words for v in self.values[f]))
        )
        # "stem stem" of adjacent words within one value: a two-word phrase is one set lookup
        self.pairs: _PerField[set[str]] = _PerField(
            lambda f: {pair(a, b) for v in self.values[f] for a, b in pairwise(v.stems)}
        )
        # the words, sorted: a prefix test is one bisection
        self.prefixable: _PerField[list[str]] = _PerField(lambda f: sorted(self.words[f]))
        self.positions: _PerField[dict[str, list[tuple[str, int, int]]]] = _PerField(
            self._positions
        )
        # leaf -> its hits here (None: it does not hold); many rules share a leaf
        self.explained: dict[object, tuple[Hit, ...] | None] = {}
        self.source_spans: dict[str, tuple[int, int]] = {}
        offset = 0
        for name in source_names(paper):
            self.source_spans.setdefault(name.casefold(), (offset, offset + len(name)))
            offset += len(name) + len(SOURCE_SEPARATOR)

    def _values(self, f: int) -> list[_Value]:
        p = self.paper
        if f == DEFAULT:
            return self.values[TITLE] + self.values[ABSTRACT]
        if f == TITLE:
            return [_Value("title", 0, p.title)]
        if f == ABSTRACT:
            return [_Value("abstract", 0, p.abstract)]
        if f == ORG:
            return [_Value("org", 0, p.organization)] if p.organization else []
        out, offset = [], 0
        for name in p.authors:
            out.append(_Value("author", offset, name))
            offset += len(name) + len(AUTHOR_SEPARATOR)
        return out

    def _positions(self, f: int) -> dict[str, list[tuple[str, int, int]]]:
        """stem -> every (field, start, end) where it occurs in field `f`, in order."""
        pos: dict[str, list[tuple[str, int, int]]] = {}
        for v in self.values[f]:
            field, offset = v.field, v.offset
            for s, (start, end) in zip(v.stems, v.spans(), strict=True):
                pos.setdefault(s, []).append((field, offset + start, offset + end))
        return pos


def _sequence_at(stems: list[str], seq: list[str]) -> list[int]:
    """Every index where `seq` occurs in `stems` as consecutive items."""
    found: list[int] = []
    n, i = len(seq), -1
    first = seq[0]
    while True:
        try:
            i = stems.index(first, i + 1)
        except ValueError:
            return found
        if stems[i : i + n] == seq:
            found.append(i)


# Each leaf has `test` (the oracle's plain scan) and `explain` (its hits when it holds, else
# None; a numeric filter holds with no hits). `term` is the leaf as printed in the rule.


class WordLeaf:
    """A Term or Phrase: its stems in sequence within one value of field code `f`."""

    __slots__ = ("f", "stems", "term")

    def __init__(self, term: str, f: int, stems: list[str]) -> None:
        self.term, self.f, self.stems = term, f, stems

    def test(self, d: AnalysedPaper) -> bool:
        return any(_sequence_at(v.stems, self.stems) for v in d.values[self.f])

    def explain(self, d: AnalysedPaper) -> tuple[Hit, ...] | None:
        if len(self.stems) == 1:
            at = d.positions[self.f].get(self.stems[0])
            term = self.term
            return tuple([Hit(f, term, start, end) for f, start, end in at]) if at else None
        last = len(self.stems) - 1
        hits = tuple(
            Hit(v.field, self.term, *v.span(i, i + last))
            for v in d.values[self.f]
            for i in _sequence_at(v.stems, self.stems)
        )
        return hits or None


class VerbatimLeaf:
    """``="..."``: its words, exactly (unstemmed), in sequence within one value of field code
    `f`. `stems` are theirs, for the index: a paper with the words has their stems."""

    __slots__ = ("f", "stems", "term", "words")

    def __init__(self, term: str, f: int, words: list[str]) -> None:
        self.term, self.f, self.words, self.stems = term, f, words, stems(words)

    def test(self, d: AnalysedPaper) -> bool:
        return any(_sequence_at(v.words, self.words) for v in d.values[self.f])

    def explain(self, d: AnalysedPaper) -> tuple[Hit, ...] | None:
        last = len(self.words) - 1
        hits = tuple(
            Hit(v.field, self.term, *v.span(i, i + last))
            for v in d.values[self.f]
            for i in _sequence_at(v.words, self.words)
        )
        return hits or None


class PrefixLeaf:
    """A word of field code `f` that starts with `prefix` (compared before stemming)."""

    __slots__ = ("f", "prefix", "term")

    def __init__(self, term: str, f: int, prefix: str) -> None:
        self.term, self.f, self.prefix = term, f, prefix

    def test(self, d: AnalysedPaper) -> bool:
        return any(w.startswith(self.prefix) for v in d.values[self.f] for w in v.words)

    def explain(self, d: AnalysedPaper) -> tuple[Hit, ...] | None:
        hits = tuple(
            Hit(v.field, self.term, *v.span(i, i))
            for v in d.values[self.f]
            for i, w in enumerate(v.words)
            if w.startswith(self.prefix)
        )
        return hits or None


class SourceLeaf:
    """One of the paper's source names equals `name` (case-insensitive)."""

    __slots__ = ("name", "term")

    def __init__(self, term: str, name: str) -> None:
        self.term, self.name = term, name.casefold()

    def test(self, d: AnalysedPaper) -> bool:
        return self.name in d.source_spans

    def explain(self, d: AnalysedPaper) -> tuple[Hit, ...] | None:
        span = d.source_spans.get(self.name)
        return (Hit("source", self.term, *span),) if span else None


class IdLeaf:
    """The canonical id equals `value` (an arXiv id given with a version is taken without it)."""

    __slots__ = ("term", "value")

    def __init__(self, term: str, value: str) -> None:
        self.term, self.value = term, normalize_arxiv_id(value) or value

    def test(self, d: AnalysedPaper) -> bool:
        return d.id == self.value

    def explain(self, d: AnalysedPaper) -> tuple[Hit, ...] | None:
        return (Hit("id", self.term, 0, len(d.id)),) if d.id == self.value else None


class NumericLeaf:
    """The paper reports the number and it satisfies the comparison. A paper that does not
    report it does not satisfy the filter, so ``NOT upvotes:>5`` *does* match it (plain two-valued
    logic: "not known to have more than 5 upvotes")."""

    __slots__ = ("attr", "compare", "term", "value")

    def __init__(self, term: str, attr: str, op: str, value: int) -> None:
        self.term, self.attr, self.compare, self.value = term, attr, _COMPARE[op], value

    def test(self, d: AnalysedPaper) -> bool:
        n = d.upvotes if self.attr == "upvotes" else d.comments
        return n is not None and self.compare(n, self.value)

    def explain(self, d: AnalysedPaper) -> tuple[Hit, ...] | None:
        return () if self.test(d) else None


AnalysedLeaf = WordLeaf | VerbatimLeaf | PrefixLeaf | SourceLeaf | IdLeaf | NumericLeaf


def analyse_leaf(leaf: Leaf) -> AnalysedLeaf:
    """A parsed leaf ready to test against papers; its `term` is `leaf_text(leaf)`."""
    term = leaf_text(leaf)
    if isinstance(leaf, Term | Phrase):
        return WordLeaf(term, FIELD_CODES[leaf.field], stems(words(leaf.text)))
    if isinstance(leaf, Verbatim):
        return VerbatimLeaf(term, FIELD_CODES[leaf.field], words(leaf.text))
    if isinstance(leaf, Prefix):
        return PrefixLeaf(term, FIELD_CODES[leaf.field], words(leaf.text)[0])
    if isinstance(leaf, Exact):
        return SourceLeaf(term, leaf.value) if leaf.field == "source" else IdLeaf(term, leaf.value)
    if isinstance(leaf, Numeric):
        return NumericLeaf(term, leaf.field, leaf.op, leaf.value)
    raise TypeError(f"not a rule leaf: {leaf!r}")

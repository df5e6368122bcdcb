"""A paper analysed once for matching, and the analysed leaves of a rule. Pure.

`AnalysedPaper` tokenises and stems every text field of a `Paper` once; every candidate rule then
reads its sets (for the fast check) and its token lists (for phrases and highlights).

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

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from paperalerts.papers import Paper, normalize_arxiv_id
from paperalerts.rules.syntax import Exact, Leaf, Numeric, Phrase, Prefix, Term, leaf_text
from paperalerts.rules.text import Token, tokenise, words
from paperalerts.rules.text import stem as stem_word

AUTHOR_SEPARATOR = ", "
SOURCE_SEPARATOR = ", "

# Field codes index the per-field tuples below; DEFAULT is title + abstract.
DEFAULT, TITLE, ABSTRACT, AUTHOR, ORG = range(5)
FIELD_CODES = {None: DEFAULT, "title": TITLE, "abstract": ABSTRACT, "author": AUTHOR, "org": ORG}
FIELD_ORDER = {"title": 0, "abstract": 1, "author": 2, "org": 3, "source": 4, "id": 5}

_COMPARE: dict[str, Callable[[int, int], bool]] = {
    ">=": int.__ge__, "<=": int.__le__, ">": int.__gt__, "<": int.__lt__, "=": int.__eq__,
}


@dataclass(frozen=True, slots=True)
class Hit:
    """Where a rule term hit: `field` and ``[start, end)`` in that field's display text."""

    field: str
    term: str
    start: int
    end: int


class _Value(NamedTuple):
    field: str
    offset: int  # where this value starts in the field's display text
    tokens: list[Token]
    stems: list[str]


def source_names(paper: Paper) -> list[str]:
    """`Paper.source` and the names in ``extra["sources"]``; first occurrence kept, "" dropped."""
    extra = paper.extra.get("sources", [])
    names = [paper.source, *([extra] if isinstance(extra, str) else extra)]
    return list(dict.fromkeys(n for n in names if isinstance(n, str) and n))


def _value(field: str, offset: int, text: str) -> _Value:
    toks = tokenise(text)
    return _Value(field, offset, toks, [t.stem for t in toks])


class AnalysedPaper:
    """One paper's fields tokenised and stemmed once (see the module docstring for offsets)."""

    __slots__ = ("_positions", "comments", "id", "paper", "source_spans", "stems", "upvotes",
                 "values", "words")

    def __init__(self, paper: Paper) -> None:
        self.paper = paper
        self.id = paper.id
        self.upvotes = paper.upvotes
        self.comments = paper.comments
        title = [_value("title", 0, paper.title)]
        abstract = [_value("abstract", 0, paper.abstract)]
        authors, offset = [], 0
        for name in paper.authors:
            authors.append(_value("author", offset, name))
            offset += len(name) + len(AUTHOR_SEPARATOR)
        org = [_value("org", 0, paper.organization)] if paper.organization else []
        self.values: tuple[list[_Value], ...] = (title + abstract, title, abstract, authors, org)
        self.stems: tuple[set[str], ...] = tuple(
            {s for v in vs for s in v.stems} for vs in self.values
        )
        self.words: tuple[set[str], ...] = tuple(
            {t.word for v in vs for t in v.tokens} for vs in self.values
        )
        self.source_spans: dict[str, tuple[int, int]] = {}
        offset = 0
        for name in source_names(paper):
            self.source_spans.setdefault(name.casefold(), (offset, offset + len(name)))
            offset += len(name) + len(SOURCE_SEPARATOR)
        self._positions: dict[int, dict[str, list[tuple[str, int, int]]]] = {}

    def positions(self, f: int) -> dict[str, list[tuple[str, int, int]]]:
        """stem -> every (field, start, end) where it occurs in field code `f` (built on demand)."""
        pos = self._positions.get(f)
        if pos is None:
            pos = self._positions[f] = {}
            for v in self.values[f]:
                for t in v.tokens:
                    span = (v.field, v.offset + t.start, v.offset + t.end)
                    pos.setdefault(t.stem, []).append(span)
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


class WordLeaf:
    """A Term or Phrase: its stems in sequence within one value of field code `f`."""

    __slots__ = ("f", "stems", "term")

    def __init__(self, term: str, f: int, stems: list[str]) -> None:
        self.term, self.f, self.stems = term, f, stems

    def test(self, d: AnalysedPaper) -> bool:
        return any(_sequence_at(v.stems, self.stems) for v in d.values[self.f])

    def hits(self, d: AnalysedPaper) -> list[Hit]:
        if len(self.stems) == 1:
            spans = d.positions(self.f).get(self.stems[0], ())
            return [Hit(f, self.term, start, end) for f, start, end in spans]
        n = len(self.stems)
        return [
            Hit(v.field, self.term, v.offset + v.tokens[i].start,
                v.offset + v.tokens[i + n - 1].end)
            for v in d.values[self.f]
            for i in _sequence_at(v.stems, self.stems)
        ]


class PrefixLeaf:
    """A word of field code `f` that starts with `prefix` (compared before stemming)."""

    __slots__ = ("f", "prefix", "term")

    def __init__(self, term: str, f: int, prefix: str) -> None:
        self.term, self.f, self.prefix = term, f, prefix

    def test(self, d: AnalysedPaper) -> bool:
        return any(t.word.startswith(self.prefix) for v in d.values[self.f] for t in v.tokens)

    def hits(self, d: AnalysedPaper) -> list[Hit]:
        return [
            Hit(v.field, self.term, v.offset + t.start, v.offset + t.end)
            for v in d.values[self.f]
            for t in v.tokens
            if t.word.startswith(self.prefix)
        ]


class SourceLeaf:
    """One of the paper's source names equals `name` (case-insensitive)."""

    __slots__ = ("name", "term")

    def __init__(self, term: str, name: str) -> None:
        self.term, self.name = term, name.casefold()

    def test(self, d: AnalysedPaper) -> bool:
        return self.name in d.source_spans

    def hits(self, d: AnalysedPaper) -> list[Hit]:
        start, end = d.source_spans[self.name]
        return [Hit("source", self.term, start, end)]


class IdLeaf:
    """The canonical id equals `value` (an arXiv id given with a version is taken without it)."""

    __slots__ = ("term", "value")

    def __init__(self, term: str, value: str) -> None:
        self.term, self.value = term, normalize_arxiv_id(value) or value

    def test(self, d: AnalysedPaper) -> bool:
        return d.id == self.value

    def hits(self, d: AnalysedPaper) -> list[Hit]:
        return [Hit("id", self.term, 0, len(d.id))]


class NumericLeaf:
    """The paper reports the number and it satisfies the comparison. A paper that does not
    report it does not satisfy the filter, so ``NOT upvotes:>5`` *does* match it (plain two-valued
    logic: "not known to have more than 5 upvotes")."""

    __slots__ = ("attr", "compare", "term", "value")

    def __init__(self, term: str, attr: str, op: str, value: int) -> None:
        self.term, self.attr, self.compare, self.value = term, attr, _COMPARE[op], value

    def number(self, d: AnalysedPaper) -> int | None:
        return d.upvotes if self.attr == "upvotes" else d.comments

    def test(self, d: AnalysedPaper) -> bool:
        n = self.number(d)
        return n is not None and self.compare(n, self.value)

    def hits(self, d: AnalysedPaper) -> list[Hit]:
        return []


AnalysedLeaf = WordLeaf | PrefixLeaf | SourceLeaf | IdLeaf | NumericLeaf


def analyse_leaf(leaf: Leaf) -> AnalysedLeaf:
    """A parsed leaf ready to test against papers; its `term` is `leaf_text(leaf)`."""
    term = leaf_text(leaf)
    if isinstance(leaf, Term | Phrase):
        return WordLeaf(term, FIELD_CODES[leaf.field], [stem_word(w) for w in words(leaf.text)])
    if isinstance(leaf, Prefix):
        return PrefixLeaf(term, FIELD_CODES[leaf.field], words(leaf.text)[0])
    if isinstance(leaf, Exact):
        return SourceLeaf(term, leaf.value) if leaf.field == "source" else IdLeaf(term, leaf.value)
    if isinstance(leaf, Numeric):
        return NumericLeaf(term, leaf.field, leaf.op, leaf.value)
    raise TypeError(f"not a rule leaf: {leaf!r}")

"""Text analysis shared by rules and papers: normalise, tokenise, stem. Pure.

The same functions analyse a rule's words and a paper's fields, so both sides agree by
construction:

* **normalise**: casefold, NFKD, drop combining marks (``café`` -> ``cafe``), and fold the few
  Latin letters NFKD leaves alone (``ł`` -> ``l``, ``ø`` -> ``o``, ``æ`` -> ``ae``);
* **tokenise**: a token is a run of letters and digits; hyphens, apostrophes and all other
  punctuation split (``self-supervised`` -> ``self``, ``supervised``). Tokens keep the character
  offsets of their run in the *original* text, for highlighting;
* **stem**: Snowball English, memoised (a paper's vocabulary repeats across papers and rules).

Prefix queries (``diffus*``) compare against the normalised words *before* stemming.

`words` is the fast path used for matching; `tokenise` adds offsets and is only needed to
highlight. Both yield the same words in the same order.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from typing import NamedTuple

import snowballstemmer

# A run of letters/digits in the original text. Combining marks (U+0300 block and friends) are
# part of a run so that text already in decomposed form ("cafe\u0301") stays one word.
_MARKS = "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
_RUN_RE = re.compile(rf"(?:[^\W_]|[{_MARKS}])+")
_ASCII_RUN_RE = re.compile(r"[a-z0-9]+")  # the same runs, on lower-cased ASCII text
# After normalisation a run may still hold non-alphanumerics (NFKD turns "½" into "1⁄2").
_ALNUM_RE = re.compile(r"[^\W_]+")
# Latin letters without a canonical decomposition, folded so that "Łukasz" matches "lukasz".
_FOLD = str.maketrans({"ł": "l", "ø": "o", "đ": "d", "ð": "d", "ħ": "h", "ı": "i",
                       "þ": "th", "æ": "ae", "œ": "oe"})


class Token(NamedTuple):
    """One word of a text: normalised `word` and `[start, end)` of its run in the original."""

    word: str
    start: int
    end: int


class _StemCache(dict[str, str]):
    """word -> stem, filled on first use; cleared when it grows past `limit` (a long-running
    worker sees an open-ended stream of numbers and names)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.stemmer = snowballstemmer.stemmer("english")

    def __missing__(self, word: str) -> str:
        if len(self) >= self.limit:
            self.clear()
        # interned: equal stems are one object, so set lookups compare pointers
        result = self[word] = sys.intern(self.stemmer.stemWord(word))
        return result


_STEMS = _StemCache(500_000)


def normalise(text: str) -> str:
    """Casefolded, accent-stripped form of `text` (punctuation and spacing are kept)."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(c for c in decomposed if not unicodedata.category(c).startswith("M"))
    return stripped.translate(_FOLD)


def stem(word: str) -> str:
    """The Snowball English stem of an already normalised word (memoised)."""
    return _STEMS[word]


def stems(words: list[str]) -> list[str]:
    """`stem` of each word."""
    return list(map(_STEMS.__getitem__, words))


def _run_words(run: str) -> list[str]:
    return [run.lower()] if run.isascii() else _ALNUM_RE.findall(normalise(run))


def words(text: str) -> list[str]:
    """The normalised (unstemmed) words of `text`, in order."""
    if text.isascii():
        return _ASCII_RUN_RE.findall(text.lower())
    return [w for run in _RUN_RE.findall(text) for w in _run_words(run)]


def spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each word of `text` (aligned with `words(text)`)."""
    if text.isascii():
        return [m.span() for m in _ASCII_RUN_RE.finditer(text.lower())]
    return [(t.start, t.end) for t in tokenise(text)]


def tokenise(text: str) -> list[Token]:
    """The words of `text` (exactly `words(text)`) with their offsets in `text`. A run that
    normalises into several words (rare: "½") gives each of them the run's offsets."""
    return [
        Token(w, m.start(), m.end()) for m in _RUN_RE.finditer(text) for w in _run_words(m.group())
    ]

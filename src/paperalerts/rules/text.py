"""Text analysis shared by rules and papers: normalise, tokenise, stem. Pure.

The same functions analyse a rule's words and a paper's fields, so both sides agree by
construction (DESIGN §6):

* **normalise**: casefold, NFKD, drop combining marks (``café`` -> ``cafe``), and fold the few
  Latin letters NFKD leaves alone (``ł`` -> ``l``, ``ø`` -> ``o``, ``æ`` -> ``ae``);
* **tokenise**: a token is a run of letters and digits; hyphens, apostrophes and all other
  punctuation split (``self-supervised`` -> ``self``, ``supervised``). Every token keeps the
  character offsets of its run in the *original* text, for highlighting;
* **stem**: Snowball English, memoised (a paper's vocabulary repeats across papers and rules).

Prefix queries (``diffus*``) compare against the normalised words *before* stemming, so tokens
carry both the word and its stem.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import NamedTuple

import snowballstemmer

# A run of letters/digits in the original text. Combining marks (U+0300 block and friends) are
# part of a run so that text already in decomposed form ("cafe\u0301") stays one word.
_MARKS = "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
_RUN_RE = re.compile(rf"(?:[^\W_]|[{_MARKS}])+")
# After normalisation a run may still hold non-alphanumerics (NFKD turns "½" into "1⁄2").
_ALNUM_RE = re.compile(r"[^\W_]+")
# Latin letters without a canonical decomposition, folded so that "Łukasz" matches "lukasz".
_FOLD = str.maketrans({"ł": "l", "ø": "o", "đ": "d", "ð": "d", "ħ": "h", "ı": "i",
                       "þ": "th", "æ": "ae", "œ": "oe"})

_STEMMER = snowballstemmer.stemmer("english")


class Token(NamedTuple):
    """One word of a text: normalised `word`, its `stem`, and `[start, end)` in the original."""

    word: str
    stem: str
    start: int
    end: int


def normalise(text: str) -> str:
    """Casefolded, accent-stripped form of `text` (punctuation and spacing are kept)."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(c for c in decomposed if not unicodedata.category(c).startswith("M"))
    return stripped.translate(_FOLD)


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """The Snowball English stem of an already normalised word (memoised)."""
    result: str = _STEMMER.stemWord(word)
    return result


def words(text: str) -> list[str]:
    """The normalised (unstemmed) words of `text`, in order."""
    return [t.word for t in tokenise(text)]


def tokenise(text: str) -> list[Token]:
    """Split `text` into tokens with offsets into `text` itself.

    A run that normalises into several words (rare: compatibility characters such as "½") yields
    each of them with the run's offsets."""
    out: list[Token] = []
    append = out.append
    for m in _RUN_RE.finditer(text):
        run = m.group()
        if run.isascii():
            w = run.lower()
            append(Token(w, stem(w), m.start(), m.end()))
            continue
        for w in _ALNUM_RE.findall(normalise(run)):
            append(Token(w, stem(w), m.start(), m.end()))
    return out

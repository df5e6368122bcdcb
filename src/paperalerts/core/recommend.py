"""Per-subscriber recommendations: TF-IDF + a linear SVM, as arxiv-sanity-lite does it. Pure.

A subscriber's *seen* papers (those their digests showed) carry a label: ``+1`` for "more like
this", ``-1`` for "not relevant", ``0`` for no feedback. The SVM learns the positives against
everything else seen (unlabelled papers count as weak negatives, as in arxiv-sanity-lite, where
every paper not tagged is a negative); when nothing but positives has been seen, the candidates
themselves stand in as the negatives. Candidates are scored by the SVM; a candidate is recommended
only when its words speak for it (the sum of its terms' contributions ``x_i * w_i`` is positive,
i.e. its score is above the bias; with stand-in negatives, when some term contributes positively)
and the reason shown is its strongest contributing terms.

Two entry points over the same arithmetic:

* `recommend` — one subscriber, as a digest is sent: fits a vectorizer on that subscriber's
  seen papers and the candidates (a few hundred texts), trains, scores, explains.
* `fit_corpus` / `train_many` / `score_many` — many subscribers at once over one shared
  vocabulary: each fit sees only its own columns, and one sparse product scores every candidate
  for every subscriber (`benchmarks/bench_recommend.py`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from scipy import sparse
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC

from paperalerts.core.papers import Paper

# arxiv-sanity-lite: LinearSVC(class_weight="balanced", C=0.01); TF-IDF with sublinear tf.
C: Final = 0.1
MAX_FEATURES: Final = 50_000
REASON_TERMS: Final = 3
# Words only: no pure numbers or one-letter tokens (arXiv ids, equation symbols).
_TOKEN_PATTERN: Final = r"(?u)\b[^\W\d_][\w\-]*[^\W_]\b"


@dataclass(frozen=True, slots=True)
class Recommendation:
    """A candidate worth showing: its SVM score and the terms that pushed it up most."""

    paper_id: str
    score: float
    terms: tuple[str, ...]


def paper_text(p: Paper) -> str:
    """What the model reads of a paper: the title (twice: it is the densest signal), the
    keywords the source gave, and the abstract."""
    return " ".join((p.title, p.title, " ".join(p.keywords), p.abstract))


def make_vectorizer(max_features: int = MAX_FEATURES) -> TfidfVectorizer:
    return TfidfVectorizer(
        lowercase=True,
        strip_accents="unicode",
        stop_words="english",
        token_pattern=_TOKEN_PATTERN,
        ngram_range=(1, 2),
        sublinear_tf=True,
        max_features=max_features,
        dtype=np.float32,
    )


def fit_corpus(texts: Sequence[str], max_features: int = MAX_FEATURES) -> tuple[Any, Any]:
    """A vectorizer fitted on `texts` and their TF-IDF matrix (CSR, one row per text, L2-normed)."""
    vec = make_vectorizer(max_features)
    return vec, vec.fit_transform(list(texts)).tocsr()


def train_weights(x: Any, labels: Sequence[int], c: float = C) -> tuple[Any, float]:
    """The SVM's weight vector and bias for rows `x` labelled +1 (positive) or anything else
    (negative). ValueError when either class is missing."""
    y = np.asarray([1 if v > 0 else 0 for v in labels], dtype=np.int8)
    if y.size == 0 or y.min() == y.max():
        raise ValueError("training needs at least one positive and one negative paper")
    svm = LinearSVC(class_weight="balanced", C=c, tol=1e-4, max_iter=2000, dual="auto")
    with warnings.catch_warnings():  # tiny, separable sets stop early; the ranking is still sound
        warnings.simplefilter("ignore", ConvergenceWarning)
        svm.fit(x, y)
    return np.asarray(svm.coef_[0], dtype=np.float32), float(svm.intercept_[0])


def train_many(
    x: Any, jobs: Sequence[tuple[Sequence[int], Sequence[int]]], c: float = C
) -> tuple[Any, Any]:
    """One model per job ``(row indices into x, labels)`` over the shared vocabulary of `x`:
    a sparse (jobs x V) weight matrix and the biases. Each fit sees only the columns its rows
    use: a column that is zero in every training row gets weight 0 under the L2 penalty anyway,
    so the weights are the same as `train_weights` on the full width, at a fraction of the cost
    (and of the memory: 10k dense weight rows over a 50k vocabulary would be 2 GB)."""
    x = sparse.csr_matrix(x)
    indptr = [0]
    indices: list[Any] = []
    data: list[Any] = []
    biases = np.empty(len(jobs), dtype=np.float32)
    for j, (rows, labels) in enumerate(jobs):
        sub = x[list(rows)]
        cols = np.unique(sub.indices)
        # Renumber the used columns 0..k-1 by hand: CSR column slicing costs more than the fit.
        narrow = sparse.csr_matrix(
            (sub.data, np.searchsorted(cols, sub.indices), sub.indptr),
            shape=(sub.shape[0], len(cols)),
        )
        w, biases[j] = train_weights(narrow, labels, c)
        indices.append(cols)
        data.append(w)
        indptr.append(indptr[-1] + len(cols))
    weights = sparse.csr_matrix(
        (np.concatenate(data) if data else np.empty(0, np.float32),
         np.concatenate(indices) if indices else np.empty(0, np.int32), np.asarray(indptr)),
        shape=(len(jobs), x.shape[1]),
    )
    return weights, biases


def score_many(x_new: Any, weights: Any, biases: Any) -> Any:
    """Scores of every candidate row of `x_new` (n x V) for every subscriber's weights
    (s x V, dense or sparse; biases s): an (n x s) array, in one matrix product."""
    product = x_new @ (weights.T if sparse.issparse(weights) else np.asarray(weights).T)
    dense = product.toarray() if sparse.issparse(product) else np.asarray(product)
    return dense + np.asarray(biases)[None, :]


def top_terms(row: Any, weights: Any, vocab: Any, k: int = REASON_TERMS) -> tuple[str, ...]:
    """The `k` terms of one TF-IDF row with the largest positive contribution ``x_i * w_i``."""
    row = sparse.csr_matrix(row)
    contrib = row.data * weights[row.indices]
    order = np.argsort(-contrib)[:k]
    return tuple(str(vocab[row.indices[i]]) for i in order if contrib[i] > 0)


def recommend(
    seen: Sequence[tuple[Paper, int]],
    candidates: Sequence[Paper],
    *,
    min_positives: int,
    limit: int,
) -> tuple[Recommendation, ...]:
    """At most `limit` candidates, best first, for a subscriber who has seen `seen` (paper,
    label). Empty when they have fewer than `min_positives` positives, `limit` is 0 or there is
    nothing to rank. Candidates that are also in `seen` are skipped."""
    positives = sum(1 for _, label in seen if label > 0)
    seen_ids = {p.id for p, _ in seen}
    fresh = [p for p in dict((p.id, p) for p in candidates).values() if p.id not in seen_ids]
    if limit <= 0 or positives < max(min_positives, 1) or not fresh:
        return ()
    train = list(seen)
    # With nothing but positives seen, the candidates stand in as negatives; their scores are
    # then pulled below the bias by their own training, so only their ranking is used.
    stand_in = all(label > 0 for _, label in train)
    if stand_in:
        train += [(p, 0) for p in fresh]
    vec, x = fit_corpus([paper_text(p) for p, _ in train] + [paper_text(p) for p in fresh])
    weights, bias = train_weights(x[: len(train)], [label for _, label in train])
    x_new = x[len(train):]
    scores = score_many(x_new, weights[None, :], np.asarray([bias]))[:, 0]
    vocab = vec.get_feature_names_out()
    out: list[Recommendation] = []
    for i in np.argsort(-scores, kind="stable"):
        if len(out) >= limit or (scores[i] - bias <= 0 and not stand_in):
            break  # sorted: every later candidate's words speak against it too
        terms = top_terms(x_new[i], weights, vocab)
        if terms:
            out.append(Recommendation(fresh[i].id, round(float(scores[i]), 4), terms))
    return tuple(out)

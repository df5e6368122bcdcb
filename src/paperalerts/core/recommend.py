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

* `recommend_many` — many subscribers at once (the bulk step, `pipeline.recommend`): one
  vectorizer fitted on every paper involved (`fit_corpus`), one `train_many` (each fit sees only
  its own columns) and one sparse product (`score_many`) scoring every candidate for every
  subscriber (`benchmarks/bench_recommend.py`).
* `recommend` — the same for one subscriber.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from scipy import sparse

from paperalerts.core.papers import Paper

if TYPE_CHECKING:
    from sklearn.feature_extraction.text import TfidfVectorizer

# scikit-learn is imported where it is used, not here: importing it costs about a second, and
# every `paperalerts` command loads this module through the pipeline; only training needs it.

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
    from sklearn.feature_extraction.text import TfidfVectorizer

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
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

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
    # Inputs built here are finite and the parameters fixed: sklearn's checks of both cost
    # more than a small fit.
    import sklearn

    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        for j, (rows, labels) in enumerate(jobs):
            sub = x[list(rows)]
            # Renumber the used columns 0..k-1 by hand: CSR column slicing costs more than
            # the fit.
            cols, renumbered = np.unique(sub.indices, return_inverse=True)
            narrow = sparse.csr_matrix(
                (sub.data, renumbered.ravel(), sub.indptr), shape=(sub.shape[0], len(cols))
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
    papers = {p.id: p for p in [*candidates, *(p for p, _ in seen)]}
    job = Job(0, [(p.id, label) for p, label in seen], [p.id for p in candidates])
    return recommend_many([job], papers, min_positives=min_positives, limit=limit).get(0, ())


@dataclass(frozen=True, slots=True)
class Job:
    """One subscriber's inputs to `recommend_many`: the papers they have seen, labelled as in
    `recommend`, and the ids of the papers they could be recommended."""

    key: int
    seen: Sequence[tuple[str, int]]
    candidates: Sequence[str]


def recommend_many(
    jobs: Sequence[Job],
    papers: Mapping[str, Paper],
    *,
    min_positives: int,
    limit: int,
    max_features: int = MAX_FEATURES,
) -> dict[int, tuple[Recommendation, ...]]:
    """`recommend` for many subscribers at once, by key: the same rules (who qualifies, stand-in
    negatives, when a candidate's words speak for it, the reason terms), over one vocabulary
    fitted on every paper of every job (`fit_corpus`), one `train_many` and one `score_many`.
    Paper ids missing from `papers` are ignored. A subscriber who gets nothing is left out."""
    plans: list[tuple[Job, list[tuple[str, int]], list[str], bool]] = []
    for job in jobs:
        seen = [(pid, label) for pid, label in job.seen if pid in papers]
        seen_ids = {pid for pid, _ in seen}
        fresh = [p for p in dict.fromkeys(job.candidates) if p in papers and p not in seen_ids]
        if limit <= 0 or sum(1 for _, v in seen if v > 0) < max(min_positives, 1) or not fresh:
            continue
        stand_in = all(label > 0 for _, label in seen)
        train = seen + [(p, 0) for p in fresh] if stand_in else seen
        plans.append((job, train, fresh, stand_in))
    if not plans:
        return {}
    ids = list(dict.fromkeys(pid for _, train, fresh, _ in plans for pid in (
        *(p for p, _ in train), *fresh)))
    row = {pid: i for i, pid in enumerate(ids)}
    vec, x = fit_corpus([paper_text(papers[pid]) for pid in ids], max_features)
    weights, biases = train_many(
        x, [([row[p] for p, _ in train], [v for _, v in train]) for _, train, _, _ in plans]
    )
    pool = list(dict.fromkeys(p for _, _, fresh, _ in plans for p in fresh))
    at = {pid: i for i, pid in enumerate(pool)}
    x_pool = x[[row[p] for p in pool]]
    scores = score_many(x_pool, weights, biases)  # pool x jobs
    vocab = vec.get_feature_names_out()
    out: dict[int, tuple[Recommendation, ...]] = {}
    for j, (job, _, fresh, stand_in) in enumerate(plans):
        mine = np.asarray([at[p] for p in fresh])
        col = scores[mine, j]
        w = np.asarray(weights.getrow(j).toarray()[0], dtype=np.float32)
        recs: list[Recommendation] = []
        for i in np.argsort(-col, kind="stable"):
            if len(recs) >= limit or (col[i] - biases[j] <= 0 and not stand_in):
                break
            terms = top_terms(x_pool[mine[i]], w, vocab)
            if terms:
                recs.append(Recommendation(fresh[i], round(float(col[i]), 4), terms))
        if recs:
            out[job.key] = tuple(recs)
    return out

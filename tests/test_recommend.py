"""The pure recommender and feedback helpers (issue 13), on real papers from the shared fixtures:
TF-IDF + linear SVM ranking, the reason terms, the positives gate, batch == one-by-one scoring,
feedback tokens, author identity (normalised names and HF user ids)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from conftest import fixture_file
from feedback_support import (
    AI_RELEVANCE,
    CS_CL,
    LG_OR_AI,
    RETRIEVAL_DAY1,
    RETRIEVAL_DAY2,
    TRANSFORMER_LG,
    arxiv_fixture,
)
from mail_fixtures import HF_DAY_2024_03_12
from paperalerts.core.feedback import (
    author_key,
    authors_of,
    feedback_links,
    follow_rule,
    make_feedback_token,
    muted_author,
    read_feedback_token,
)
from paperalerts.core.recommend import (
    fit_corpus,
    paper_text,
    recommend,
    score_many,
    train_many,
    train_weights,
)
from paperalerts.core.sources import parse
from paperalerts.core.tokens import make_token
from paperalerts.errors import TokenError
from tamper_support import tamper

SECRET = "recommend-test-secret-" + "x" * 20


def _unrelated() -> list:  # type: ignore[type-arg]
    return arxiv_fixture(LG_OR_AI) + arxiv_fixture(TRANSFORMER_LG) + arxiv_fixture(CS_CL)


def test_a_model_trained_on_fixture_papers_ranks_held_back_similar_papers_first() -> None:
    """Trained on one day's real arXiv "retrieval" papers (liked) against AI papers (seen, not
    liked), every retrieval paper of two days later (held back) ranks in the top 2 of itself and
    27 unrelated real ML papers, and is recommended with "retrieval"-ish reasons."""
    seen = [(p, 1) for p in arxiv_fixture(RETRIEVAL_DAY1)]
    seen += [(p, 0) for p in arxiv_fixture(AI_RELEVANCE)]
    unrelated = _unrelated()
    assert len(unrelated) == 27
    held = [p for p in arxiv_fixture(RETRIEVAL_DAY2) if "retrieval" in p.title.lower()]
    assert len(held) == 4
    for paper in held:
        recs = recommend(seen, [paper, *unrelated], min_positives=1, limit=100)
        ranked = [r.paper_id for r in recs]
        assert paper.id in ranked[:2], (paper.title, ranked.index(paper.id) if paper.id in
                                        ranked else None)
        assert [r.score for r in recs] == sorted((r.score for r in recs), reverse=True)


def test_reason_terms_are_words_of_the_paper_that_raised_its_score() -> None:
    """Each recommendation's terms occur in the paper's text; at most three; none is a number."""
    seen = [(p, 1) for p in arxiv_fixture(RETRIEVAL_DAY1)]
    seen += [(p, -1) for p in arxiv_fixture(AI_RELEVANCE)]
    pool = arxiv_fixture(RETRIEVAL_DAY2) + _unrelated()
    recs = recommend(seen, pool, min_positives=1, limit=5)
    assert len(recs) == 5
    texts = {p.id: paper_text(p).lower() for p in pool}
    for r in recs:
        assert 1 <= len(r.terms) <= 3
        for term in r.terms:
            assert all(word in texts[r.paper_id] for word in term.split()), term
            assert not term.isdigit()


def test_no_recommendations_below_the_positives_threshold_or_with_nothing_to_rank() -> None:
    """Off until enough "more like this" (the setting), with limit 0, with no candidates; seen
    papers are never recommended back."""
    day1 = arxiv_fixture(RETRIEVAL_DAY1)
    seen = [(p, 1) for p in day1[:2]] + [(p, 0) for p in day1[2:]]
    pool = arxiv_fixture(RETRIEVAL_DAY2)
    assert recommend(seen, pool, min_positives=3, limit=5) == ()
    assert recommend(seen, pool, min_positives=2, limit=0) == ()
    assert recommend(seen, [], min_positives=2, limit=5) == ()
    assert recommend(seen, day1, min_positives=2, limit=5) == ()
    assert recommend(seen, pool, min_positives=2, limit=5) != ()


def test_only_positives_seen_uses_the_candidates_as_negatives() -> None:
    """A reader whose every seen paper is liked still gets a ranking (arxiv-sanity style): half
    of the top 4 of 31 are the 4 held-back retrieval papers (chance would give about 0.5)."""
    seen = [(p, 1) for p in arxiv_fixture(RETRIEVAL_DAY1)]
    held = [p for p in arxiv_fixture(RETRIEVAL_DAY2) if "retrieval" in p.title.lower()]
    recs = recommend(seen, [*held, *_unrelated()], min_positives=1, limit=4)
    assert len({r.paper_id for r in recs} & {p.id for p in held}) >= 2


def test_batch_scoring_equals_scoring_each_subscriber_alone() -> None:
    """`score_many` (one product for all subscribers) gives each subscriber's own scores, and
    `train_many` (each fit on its own columns only) the same weights as a full-width fit."""
    papers = arxiv_fixture(RETRIEVAL_DAY1) + arxiv_fixture(AI_RELEVANCE) + _unrelated()
    _, x = fit_corpus([paper_text(p) for p in papers])
    rng = np.random.default_rng(7)
    models = []
    for _ in range(4):
        labels = [1 if v < 0.3 else 0 for v in rng.random(40)]
        labels[0], labels[1] = 1, 0
        models.append(train_weights(x[:40], labels))
    weights = np.stack([w for w, _ in models])
    biases = np.array([b for _, b in models])
    batch = score_many(x[40:], weights, biases)
    for j, (w, b) in enumerate(models):
        np.testing.assert_allclose(batch[:, j], x[40:] @ w + b, rtol=1e-5, atol=1e-6)
    sparse_w, sparse_b = train_many(x, [(range(40), labels)])
    np.testing.assert_allclose(sparse_w.toarray()[0], models[-1][0], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(score_many(x[40:], sparse_w, sparse_b)[:, 0], batch[:, -1],
                               rtol=1e-3, atol=1e-4)
    with pytest.raises(ValueError, match="one positive and one negative"):
        train_weights(x[:3], [1, 1, 1])


def test_feedback_tokens_round_trip_and_refuse_edits_purposes_and_age() -> None:
    """A feedback token names subscriber, version, paper and email; a manage token, an edited
    one and an expired one are refused with their reasons."""
    now = datetime(2026, 8, 12, tzinfo=UTC)
    tok = make_feedback_token(SECRET, 7, 2, "2608.11200", "d42", now=now)
    claim = read_feedback_token(SECRET, tok, now=now)
    assert (claim.subscriber_id, claim.token_version, claim.paper_id, claim.nonce) == (
        7, 2, "2608.11200", "d42")
    assert claim.use_key("more") == "d42:2608.11200:more"
    with pytest.raises(TokenError) as e:
        read_feedback_token(SECRET, make_token(SECRET, "manage", 7, 2), now=now)
    assert e.value.reason == "wrong_purpose"
    with pytest.raises(TokenError) as e:
        read_feedback_token(SECRET, tamper(tok), now=now)
    assert e.value.reason == "tampered"
    with pytest.raises(TokenError) as e:
        read_feedback_token(SECRET, tok, timedelta(days=1), now=now + timedelta(days=2))
    assert e.value.reason == "expired"
    with pytest.raises(ValueError, match="nonce"):
        make_feedback_token(SECRET, 7, 2, "2608.11200", "D 42")
    links = feedback_links("https://x.org/", SECRET, 7, 2, ["a1"], "d1", now=now)
    assert [link.url.rsplit("/", 1)[1] for link in links["a1"]] == ["more", "less", "mute",
                                                                   "follow"]


def test_authors_are_known_by_normalised_name_and_hf_user_id() -> None:
    """The HF parser keeps claimed authors' user ids; a mute matches the id even when the name
    is spelled differently, or the normalised name when there is no id."""
    body = fixture_file(HF_DAY_2024_03_12).read_bytes()
    paper = parse("hf-api", body, "https://huggingface.co/api/daily_papers")[0]
    first = authors_of(paper)[0]
    assert (first.name, first.key, first.hf_id) == ("Nicholas Carlini", "nicholas carlini",
                                                    "hf:carlini")
    renamed = replace(paper, authors=("N. Carlini", *paper.authors[1:]))
    assert muted_author(renamed, {"hf:carlini"}) is not None
    assert muted_author(paper, {author_key("NICHOLAS  Carlini")}) is not None
    assert muted_author(paper, {"nobody"}) is None
    assert author_key("José  A. García-López") == "jose a garcia lopez"
    assert follow_rule('Ann "The" O\'Neil') == 'author:"Ann The O\'Neil"'

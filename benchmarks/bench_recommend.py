"""Benchmark the recommender: training and scoring for 10,000 subscribers x 500 new papers.

    .venv/bin/python benchmarks/bench_recommend.py            # 10k subscribers x 500 new papers
    .venv/bin/python benchmarks/bench_recommend.py --quick    # 1k subscribers

Papers: every paper of the shared fixtures, parsed by `paperalerts.core.sources` (about 300
distinct ones; PAPERALERTS_FIXTURES_DIR overrides the folder), grouped into topics by the file they
came from (an arXiv query such as all:retrieval, a feed, an HF day). A pool of papers for
subscribers to have seen, and the new papers, are made by splicing real ones: a real title and
abstract of the topic with two sentences of any other fixture paper, so texts and vocabulary are
real and each paper has a known topic.

Each subscriber follows one topic: has seen `--seen` papers (a third from their topic) and marked
`--likes` of their topic's as "more like this". Measured in this run:

* batch (what a nightly job over every subscriber would do): one TF-IDF over pool + new papers,
  `train_many` (one linear SVM per subscriber, each on its own columns), `score_many` (one
  sparse product: 500 new papers x every subscriber), top-5 per subscriber;
* baseline (what one digest send does, from scratch): `recommend()` per subscriber, fitting its
  own TF-IDF on its seen papers + the 500 new ones, training, scoring and explaining; timed on
  a sample of subscribers and extrapolated;
* the ratio baseline / batch (wall clock, and CPU time, steadier on a shared machine), and
  precision@5 (share of the top 5 in the subscriber's topic) of
  both, so the speed-up is not bought with worse suggestions.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

from paperalerts.core.papers import Paper
from paperalerts.core.recommend import (
    fit_corpus,
    paper_text,
    recommend,
    score_many,
    train_many,
)
from paperalerts.core.sources import parse
from paperalerts.errors import ParseError

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(os.environ.get("PAPERALERTS_FIXTURES_DIR", REPO.parent / "shared" / "fixtures"))
KINDS = {"hf_api_daily_papers": "hf-api", "arxiv_api": "arxiv", "arxiv_rss": "arxiv",
         "hf_papers_rss_thirdparty": "feed", "hf_papers_html": "hf-papers"}
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def topics() -> dict[str, list[Paper]]:
    """Fixture file -> its papers (with an abstract), each paper under its first file only."""
    out: dict[str, list[Paper]] = {}
    seen: set[str] = set()
    for folder, kind in KINDS.items():
        for path in sorted((FIXTURES / folder).glob("*")):
            try:
                papers = parse(kind, path.read_bytes(), path.as_uri())
            except ParseError:
                continue
            fresh = [p for p in papers if p.id not in seen and len(p.abstract) > 200]
            seen.update(p.id for p in fresh)
            if len(fresh) >= 5:
                out[path.name] = fresh
    if not out:
        sys.exit(f"no fixture papers under {FIXTURES} (set PAPERALERTS_FIXTURES_DIR)")
    return out


def spliced(rng: random.Random, group: list[Paper], everything: list[Paper], n: int, prefix: str
            ) -> list[Paper]:
    """`n` papers of one topic: a real paper of it with two sentences of any other paper (noise
    across topics, so the topic is not given away by every sentence)."""
    out = []
    for i in range(n):
        base, other = rng.choice(group), rng.choice(everything)
        extra = _SENTENCE.split(other.abstract)
        rng.shuffle(extra)
        out.append(replace(base, id=f"{prefix}{i}", abstract=base.abstract + " " +
                           " ".join(extra[:2])))
    return out


def build(rng: random.Random, n_pool: int, n_new: int
          ) -> tuple[list[Paper], list[int], list[Paper], list[int]]:
    groups = topics()
    names = sorted(groups)
    everything = [p for name in names for p in groups[name]]
    pool, pool_topic, new, new_topic = [], [], [], []
    for t, name in enumerate(names):
        k_pool, k_new = n_pool // len(names) + 1, n_new // len(names) + 1
        pool += spliced(rng, groups[name], everything, k_pool, f"p{t}-")
        pool_topic += [t] * k_pool
        new += spliced(rng, groups[name], everything, k_new, f"n{t}-")
        new_topic += [t] * k_new
    return pool, pool_topic, new[:n_new], new_topic[:n_new]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subscribers", type=int, default=10_000)
    ap.add_argument("--new", type=int, default=500)
    ap.add_argument("--pool", type=int, default=20_000)
    ap.add_argument("--seen", type=int, default=100)
    ap.add_argument("--likes", type=int, default=5)
    ap.add_argument("--baseline-sample", type=int, default=100)
    ap.add_argument("--quick", action="store_true", help="1,000 subscribers, 5,000-paper pool")
    args = ap.parse_args()
    if args.quick:
        args.subscribers, args.pool, args.baseline_sample = 1_000, 5_000, 30
    rng = random.Random(13)
    pool, pool_topic, new, new_topic = build(rng, args.pool, args.new)
    by_topic: dict[int, list[int]] = defaultdict(list)
    for i, t in enumerate(pool_topic):
        by_topic[t].append(i)
    n_topics = len(by_topic)
    subs = []
    for _ in range(args.subscribers):
        t = rng.randrange(n_topics)
        own = rng.sample(by_topic[t], args.seen // 3)
        rest = rng.sample(range(len(pool)), args.seen - len(own))
        rows = list(dict.fromkeys(own + rest))
        labels = [1 if i < args.likes else 0 for i in range(len(rows))]
        subs.append((t, rows, labels))
    print(f"{len(pool):,} seen-pool papers and {len(new):,} new papers from {n_topics} fixture "
          f"topics; {len(subs):,} subscribers x {args.seen} seen, {args.likes} liked")

    cpu0 = time.process_time()
    t0 = time.perf_counter()
    _, x = fit_corpus([paper_text(p) for p in pool + new])
    t_fit = time.perf_counter() - t0
    x_new = x[len(pool):]
    t0 = time.perf_counter()
    weights, biases = train_many(x, [(rows, labels) for _, rows, labels in subs])
    t_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores = score_many(x_new, weights, biases)  # (new x subscribers)
    top = np.argpartition(-scores, 5, axis=0)[:5]
    t_score = time.perf_counter() - t0
    batch = t_fit + t_train + t_score
    batch_cpu = time.process_time() - cpu0
    new_topic_arr = np.asarray(new_topic)
    p_batch = float(np.mean([np.mean(new_topic_arr[top[:, j]] == subs[j][0])
                             for j in range(len(subs))]))

    sample = rng.sample(range(len(subs)), min(args.baseline_sample, len(subs)))
    hits = []
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for j in sample:
        t, rows, labels = subs[j]
        seen = [(pool[i], label) for i, label in zip(rows, labels, strict=True)]
        recs = recommend(seen, new, min_positives=1, limit=5)
        topic_of = {p.id: new_topic[k] for k, p in enumerate(new)}
        hits.append(np.mean([topic_of[r.paper_id] == t for r in recs]) if recs else 0.0)
    per_sub = (time.perf_counter() - t0) / len(sample)
    per_sub_cpu = (time.process_time() - cpu0) / len(sample)
    baseline = per_sub * len(subs)

    n = len(subs)
    print(f"batch, shared vocabulary ({x.shape[1]:,} terms):")
    print(f"  TF-IDF fit, {len(pool) + len(new):,} papers   {t_fit:8.2f} s")
    print(f"  train {n:,} SVMs                {t_train:8.2f} s  ({t_train / n * 1e3:.2f} ms each)")
    print(f"  score {len(new)} x {n:,} + top 5       {t_score:8.2f} s  "
          f"({len(new) * n / t_score / 1e6:.1f} M scores/s)")
    print(f"  total                          {batch:8.2f} s  ({batch / n * 1e3:.2f} ms/subscriber)"
          f"  [CPU {batch_cpu:.2f} s]")
    print(f"baseline, from scratch per subscriber (recommend(), sample of {len(sample)}):")
    print(f"  per subscriber                 {per_sub * 1e3:8.1f} ms"
          f"  [CPU {per_sub_cpu * 1e3:.1f} ms]")
    print(f"  {n:,} subscribers (extrapolated) {baseline:8.1f} s")
    print(f"baseline / batch                 {baseline / batch:8.1f} x  "
          f"[CPU {per_sub_cpu * n / batch_cpu:.1f} x]")
    print(f"precision@5 (top 5 in the subscriber's topic): batch {p_batch:.2f}, "
          f"baseline {float(np.mean(hits)):.2f}, chance {1 / n_topics:.2f}")


if __name__ == "__main__":
    main()

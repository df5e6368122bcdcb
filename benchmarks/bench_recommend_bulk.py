"""The bulk recommendation step's training and scoring, for many engaged subscribers.

    .venv/bin/python benchmarks/bench_recommend_bulk.py [--engaged 20000] [--chunk 2000]

The papers of the daily-run benchmark (~100 of today, ~20 of two days ago; daily_run_world.py);
each engaged subscriber has liked 5 of the older papers and may be recommended any of today's
they were not matched (90% of them, drawn per subscriber). `recommend_many` runs over chunks of
--chunk subscribers, as `pipeline.recommend.train_recommendations` does (one vocabulary, one
training and one scoring per chunk); the database reads and writes around it are not included
(the daily-run benchmark's "recommend" stage has them). In the same run, the baseline: the old
send-time path, `recommend()` fitting one subscriber from scratch, on a sample of --sample.
Prints CPU seconds and wall seconds in total and per subscriber.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

from daily_run_world import LIKES, build_world

from paperalerts.core.recommend import Job, recommend, recommend_many


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engaged", type=int, default=20_000, help="engaged subscribers (20000)")
    ap.add_argument("--chunk", type=int, default=2000, help="subscribers per chunk (2000)")
    ap.add_argument("--sample", type=int, default=200, help="baseline sample (200)")
    args = ap.parse_args(argv)
    world = build_world()
    papers = {p.id: p for p in [*world.papers, *world.history]}
    rng = random.Random(18)
    jobs = [
        Job(i, [(p.id, 1) for p in rng.sample(world.history, LIKES)],
            [p.id for p in world.papers if rng.random() < 0.9])
        for i in range(args.engaged)
    ]  # fmt: skip
    cpu, wall = time.process_time(), time.perf_counter()
    got = 0
    for lo in range(0, len(jobs), args.chunk):
        got += len(recommend_many(jobs[lo : lo + args.chunk], papers, min_positives=3, limit=5))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    n = len(jobs)
    print(f"bulk: {n} engaged subscribers in chunks of {args.chunk}: {cpu:.1f} s CPU, "
          f"{wall:.1f} s wall ({cpu / n * 1000:.2f} ms CPU each); {got} got recommendations")
    sample = jobs[: args.sample]
    b_cpu = time.process_time()
    for job in sample:
        recommend([(papers[p], v) for p, v in job.seen], [papers[p] for p in job.candidates],
                  min_positives=3, limit=5)
    b_cpu = time.process_time() - b_cpu
    each = b_cpu / max(len(sample), 1)
    print(f"baseline, one subscriber at a time (sample of {len(sample)}): {each * 1000:.2f} ms "
          f"CPU each -> {each * n:.1f} s CPU for {n}; bulk is {each * n / cpu:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Whole-process and pipeline measurements for `bench_match.py` (kept apart for its length).

* `whole_process`: ``paperalerts match RULES PAPERS`` against ``perq match`` as subprocesses on
  the same rules and papers (the CNF case: ANDs of 1-3 OR-groups of 1-2 words), median of
  `runs` alternating runs, papers/s of both and their ratio, explanations (``terms``) included
  in ours. Perq's input is the fairest we can give it: its index is built once beforehand (not
  timed; reported) and its documents carry the papers' title and abstract *stems*, precomputed
  (Perq does not stem; ours tokenises and stems the papers itself, timed). Both outputs are
  checked to hold the same (paper, rule) pairs.
* `our_process`: ours alone on any rules file (the realistic-density case: phrases, fields).
* `pipeline`: ``match_new_events`` on a fresh PostgreSQL database: subscribers' rules x paper
  events -> match rows with explanations (index build, matching and inserts timed together).
"""

from __future__ import annotations

import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from paperalerts.core.papers import Paper
from paperalerts.core.rules.analysed import DEFAULT, AnalysedPaper


class Run(NamedTuple):
    wall: float  # seconds
    cpu: float  # user + system seconds of the child


def _tool(name: str) -> list[str]:
    """The console script `name` installed beside this interpreter."""
    found = Path(sys.executable).parent / name
    path = str(found) if found.exists() else shutil.which(name)
    if path is None:
        sys.exit(f"{name} is not installed (pip install -e '.[test]')")
    return [path]


def _timed(cmd: list[str], out: Path) -> Run:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with out.open("wb") as f:
        subprocess.run(cmd, stdout=f, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(wall, cpu)


def _median(runs: list[Run]) -> Run:
    return Run(statistics.median(r.wall for r in runs), statistics.median(r.cpu for r in runs))


def _write_papers(path: Path, papers: list[Paper]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for p in papers:
            f.write(json.dumps(p.to_json(), ensure_ascii=False) + "\n")


def load_average() -> str:
    """The machine's 1, 5 and 15 minute load averages (the figures are only as quiet as it)."""
    with open("/proc/loadavg", encoding="ascii") as f:
        return " ".join(f.read().split()[:3])


class Comparison(NamedTuple):
    ours: Run
    perq: Run
    perq_build: float
    matches: int
    same: bool


def whole_process(
    rules: list[list[list[str]]], papers: list[Paper], runs: int = 3
) -> Comparison:
    """Both command lines on `rules` (AND of OR-groups of words that are their own stem)."""
    with tempfile.TemporaryDirectory(prefix="bench-match-") as tmp:
        d = Path(tmp)
        with (d / "rules.txt").open("w", encoding="utf-8") as f:
            for groups in rules:
                f.write(" ".join(g[0] if len(g) == 1 else "(" + " OR ".join(g) + ")"
                                 for g in groups) + "\n")
        with (d / "queries.jsonl").open("w", encoding="utf-8") as f:
            for n, groups in enumerate(rules, 1):
                f.write(json.dumps({"id": n, "terms": groups}) + "\n")
        _write_papers(d / "papers.jsonl", papers)
        with (d / "docs.jsonl").open("w", encoding="utf-8") as f:
            for p in papers:
                stems = sorted(AnalysedPaper(p).stems[DEFAULT])
                f.write(json.dumps({"id": p.id, "terms": stems}) + "\n")
        perq = _tool("perq")
        t0 = time.perf_counter()
        subprocess.run([*perq, "build", "--index", str(d / "perq.sqlite"), "--queries",
                        str(d / "queries.jsonl")], check=True, capture_output=True)
        perq_build = time.perf_counter() - t0
        ours_cmd = [*_tool("paperalerts"), "match", str(d / "rules.txt"), str(d / "papers.jsonl")]
        perq_cmd = [*perq, "match", "--index", str(d / "perq.sqlite"), "--documents",
                    str(d / "docs.jsonl")]
        ours_runs, perq_runs = [], []
        for _ in range(runs):  # alternating, so that both see the same machine load
            perq_runs.append(_timed(perq_cmd, d / "perq.out"))
            ours_runs.append(_timed(ours_cmd, d / "ours.out"))
        theirs = {(doc["id"], r) for doc in map(json.loads, (d / "perq.out").open())
                  for r in doc["matches"]}
        mine = {(m["paper"], m["rule"]) for m in map(json.loads, (d / "ours.out").open())}
        return Comparison(_median(ours_runs), _median(perq_runs), perq_build, len(mine),
                          mine == theirs)


def our_process(rule_lines: list[str], papers: list[Paper], runs: int = 3) -> tuple[Run, int]:
    """``paperalerts match`` alone: median of `runs`, and the number of matches printed."""
    with tempfile.TemporaryDirectory(prefix="bench-match-") as tmp:
        d = Path(tmp)
        (d / "rules.txt").write_text("".join(q + "\n" for q in rule_lines), encoding="utf-8")
        _write_papers(d / "papers.jsonl", papers)
        cmd = [*_tool("paperalerts"), "match", str(d / "rules.txt"), str(d / "papers.jsonl")]
        timed = [_timed(cmd, d / "ours.out") for _ in range(runs)]
        with (d / "ours.out").open("rb") as f:
            return _median(timed), sum(1 for _ in f)


class PipelineRun(NamedTuple):
    seconds: float
    events: int
    matches: int


def pipeline(url: str, rules: list[str], papers: list[Paper], per_subscriber: int = 10
             ) -> PipelineRun:
    """`match_new_events` on a fresh database of the PostgreSQL server at `url` (dropped
    after): `rules` spread over subscribers, `per_subscriber` each; one new-paper event per
    paper."""
    from sqlalchemy import create_engine, text

    from paperalerts.core.rules import parse, to_text
    from paperalerts.edges.db import models as m
    from paperalerts.edges.db import repo
    from paperalerts.edges.db.engine import make_engine, session_factory, transaction, upgrade
    from paperalerts.pipeline import match_new_events

    name = f"pa_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(url.rsplit("/", 1)[0] + f"/{name}")
    try:
        upgrade(engine)
        factory = session_factory(engine)
        now = datetime(2026, 8, 1, 6, tzinfo=UTC)
        with transaction(factory) as s:
            subs = [m.Subscriber(email=f"s{i}@example.org", status="active")
                    for i in range(-(-len(rules) // per_subscriber))]
            s.add_all(subs)
            s.flush()
            s.add_all(m.Rule(subscriber_id=subs[i // per_subscriber].id, query=q,
                             normalized=to_text(parse(q))) for i, q in enumerate(rules))
            for p in papers:
                s.add(repo.new_paper_row(p, now))
            s.flush()
            s.add_all(m.PaperEvent(paper_id=p.id, kind="new", at=now) for p in papers)
            repo.bump_rules_version(s)
        t0 = time.perf_counter()
        out = match_new_events(factory, now=now)
        return PipelineRun(time.perf_counter() - t0, out.events, out.matches)
    finally:
        engine.dispose()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def report(what: str, n_papers: int, run: Run) -> str:
    return (f"{what}: {n_papers / run.wall:,.0f} papers/s ({run.wall:.2f} s wall, "
            f"{run.cpu:.2f} s CPU)")


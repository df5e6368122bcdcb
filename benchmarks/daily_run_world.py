"""The world of `bench_daily_run.py`: real papers, realistic rules, a populated database, a sink.

Papers are ~100 real fixture papers read with the project's own parsers. Rules are queries an
alert user would write (words and phrases of the fixtures' field), kept when they match between
one and twelve of those papers; each subscriber gets one to three of them, drawn (seeded) until
the papers they match together number 3-15. The database is filled with Core executemany inserts
(setup is not what is being measured, but it is timed). The sink is aiosmtpd in its own process;
it counts every Message-ID it receives, repeats included, and tells pipeline mail from the raw
baseline by the envelope sender.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import re
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.core.papers import Paper
from paperalerts.core.rules import match_brute_force
from paperalerts.core.sources import parse as parse_source
from paperalerts.core.subscriber_file import Record
from paperalerts.edges.db import models as m
from paperalerts.edges.db import repo
from paperalerts.edges.db.engine import transaction
from paperalerts.pipeline.subscriber_import import import_records

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(os.environ.get("PAPERALERTS_FIXTURES_DIR", REPO.parent / "shared" / "fixtures"))
PAPER_FILES = [
    ("hf-api", "hf_api_daily_papers/hf_api_daily_papers_2024-03-12.json"),
    ("hf-api", "hf_api_daily_papers/hf_api_daily_papers_2024-03-13.json"),
    ("hf-api", "hf_api_daily_papers/hf_api_daily_papers_2024-03-15.json"),
    ("hf-api", "hf_api_daily_papers/hf_api_daily_papers_2026-05-08.json"),
    ("hf-papers", "hf_papers_html/hf_papers_daily_2026-09-28.html"),
    ("arxiv", "arxiv_api/arxiv_api_query_cat-cs.LG-OR-cat-cs.AI_2026-04-30.xml"),
]
MAX_PAPERS = 100
# What engaged subscribers read before today (their "more like this" clicks): first seen two
# days ago, matched by nobody today.
HISTORY_FILES = [
    ("arxiv", "arxiv_api/arxiv_api_query_all-retrieval_submittedDate-desc_2026-08-12.xml"),
    ("arxiv", "arxiv_api/arxiv_api_query_cat-cs.CL_2026-05-11.xml"),
    ("arxiv", "arxiv_api/arxiv_api_query_all-transformer-AND-cat-cs.LG_2026-06-14.xml"),
]
LIKES = 5  # "more like this" clicks of an engaged subscriber
# What people subscribe to in this field; kept only where the fixtures give 1-12 matches.
CANDIDATES = [
    "diffusion",
    '"language model"',
    "agent*",
    "reinforcement learning",
    "video",
    "robot*",
    "benchmark",
    "multimodal",
    "reasoning",
    "retrieval",
    "transformer",
    "attention",
    '"large language"',
    "vision",
    "image generation",
    "speech OR audio",
    "code",
    "math*",
    "3d",
    "graph",
    "quantization",
    "efficient",
    "alignment",
    "safety",
    "evaluation",
    "dataset",
    "medical OR clinical",
    "scaling",
    "distillation",
    "tokenizer OR tokenization",
    "embedding*",
    "world model",
    "planning",
    "in-context",
    "chain-of-thought OR cot",
    "preference",
    "reward",
    "hallucination",
    "long context",
    "memory",
    "sparse",
    "mixture",
    "survey",
    "open-source",
    "instruction",
    "fine-tuning",
    "title:agent",
    "title:diffusion",
    "title:video",
    "title:reasoning",
    "multilingual",
    "navigation",
    "segmentation",
    "detection",
    "text-to-image",
    "editing",
    "generation -video",
    "policy",
    "inference",
    "compression",
    "privacy",
    "uncertainty",
    "optimization",
    "search",
    "tool*",
    "web",
    "question answering",
    "summarization",
    "translation",
    "physics",
    "chemistry OR molecule*",
]


@dataclass(frozen=True)
class World:
    papers: list[Paper]
    queries: list[str]  # the rules' query texts, kept
    hits: dict[str, frozenset[str]]  # query -> ids of the papers it matches
    history: list[Paper] = field(default_factory=list)  # what engaged subscribers liked before


@dataclass(frozen=True)
class Population:
    """What `populate` made: the matches the run must deliver, the engaged subscribers' ids,
    and the seconds the subscriber import took."""

    expected_matches: int
    engaged: frozenset[int]
    import_seconds: float


def load_papers(
    fixtures: Path = FIXTURES, files: list[tuple[str, str]] = PAPER_FILES, limit: int = MAX_PAPERS
) -> list[Paper]:
    """Up to `limit` distinct real papers from the fixtures, via the project's parsers."""
    seen: dict[str, Paper] = {}
    for kind, rel in files:
        path = fixtures / rel
        for p in parse_source(kind, path.read_bytes(), f"https://fixtures.invalid/{rel}"):
            seen.setdefault(p.id, p)
    return list(seen.values())[:limit]


def build_world(fixtures: Path = FIXTURES) -> World:
    papers = load_papers(fixtures)
    today = {p.id for p in papers}
    history = [p for p in load_papers(fixtures, HISTORY_FILES, 10_000) if p.id not in today]
    matched = match_brute_force(papers, [(q, q) for q in CANDIDATES])
    hits: dict[str, set[str]] = {q: set() for q in CANDIDATES}
    for h in matched:
        hits[str(h.rule)].add(h.paper_id)
    kept = [q for q in CANDIDATES if 1 <= len(hits[q]) <= 12]
    return World(papers, kept, {q: frozenset(hits[q]) for q in kept}, history)


def rules_for(world: World, i: int) -> list[str]:
    """Subscriber i's rules: 1-3 queries matching 3-15 papers together (seeded by i)."""
    rng = random.Random(i)
    for _ in range(200):
        picked = rng.sample(world.queries, rng.randint(1, 3))
        n = len(frozenset().union(*(world.hits[q] for q in picked)))
        if 3 <= n <= 15:
            return picked
    raise RuntimeError(f"no rule set with 3-15 matches for subscriber {i}")


def expected_matches(world: World, rules: list[str]) -> int:
    return len(frozenset().union(*(world.hits[q] for q in rules)))


def populate(
    factory: sessionmaker[Session],
    world: World,
    n: int,
    now: datetime,
    *,
    engaged: float = 0.0,
    chunk: int = 5000,
) -> Population:
    """N active daily subscribers due now, loaded through the subscriber import (the pipeline
    behind ``paperalerts subscribers import``), each with their rules; the papers and one
    unmatched event per paper (as a fresh scrape leaves them); and, for every subscriber whose
    number falls in the `engaged` share, `LIKES` "more like this" on papers of two days ago."""
    with transaction(factory) as s:
        src = m.Source(name="hf-daily", kind="hf-api", url="https://fixtures.invalid/")
        s.add(src)
        s.flush()
        snap = m.Snapshot(source_id=src.id, fetched_at=now, status="ok")
        s.add(snap)
        for p in world.papers:
            s.add(repo.new_paper_row(p, now))
        for p in world.history:
            s.add(repo.new_paper_row(p, now - timedelta(days=2)))
        s.flush()
        s.execute(
            insert(m.PaperSource),
            [
                dict(paper_id=p.id, source_id=src.id, first_seen_at=now, last_seen_at=now)
                for p in world.papers
            ],
        )
        s.execute(
            insert(m.PaperEvent),
            [
                dict(paper_id=p.id, source_id=src.id, snapshot_id=snap.id, kind="new", at=now)
                for p in world.papers
            ],
        )
    total = 0
    picks: list[list[str]] = []
    for i in range(n):
        picks.append(rules_for(world, i))
        total += expected_matches(world, picks[-1])
    records = (
        Record(i + 2, {"email": email_of(i), "name": f"Reader {i + 1}", "status": "active",
                       "frequency": "daily", "send_hour": str(now.hour), "timezone": "UTC",
                       "rules": picks[i]})
        for i in range(n)
    )  # fmt: skip
    t = time.perf_counter()
    summary = import_records(factory, records, now=now, actor="bench", chunk_rows=chunk)
    took = time.perf_counter() - t
    if summary.refused or summary.created != n:
        raise RuntimeError(f"the import did not load {n} subscribers: {summary.describe()}")
    due = now - timedelta(minutes=1)
    with transaction(factory) as s:  # the send hour arrives
        s.execute(update(m.Subscriber).values(next_digest_at=due))
        ids = {e: i for e, i in s.execute(select(m.Subscriber.email, m.Subscriber.id))}
    keen = {ids[email_of(i)] for i in range(n) if engaged and i % round(1 / engaged) == 0}
    rng = random.Random(18)
    likes = [
        dict(subscriber_id=sid, paper_id=p.id, label="more", recommended=False, via="email",
             created_at=due, updated_at=due)
        for sid in sorted(keen) for p in rng.sample(world.history, LIKES)
    ]  # fmt: skip
    for lo in range(0, len(likes), chunk):
        with transaction(factory) as s:
            s.execute(insert(m.Feedback), likes[lo : lo + chunk])
    return Population(total, frozenset(keen), took)


def email_of(i: int) -> str:
    return f"reader{i + 1}@bench.example.org"


# --- the sink -------------------------------------------------------------------------------

RAW_SENDER = "raw-baseline@bench.example.org"
_MID_RE = re.compile(rb"^Message-ID:[ \t]*(<[^>\r\n]+>)", re.IGNORECASE | re.MULTILINE)


class _Handler:
    def __init__(self, count: Any) -> None:
        self.count = count
        self.ids: Counter[bytes] = Counter()
        self.raw = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if envelope.mail_from == RAW_SENDER:
            self.raw += 1
        else:
            head = envelope.content[: envelope.content.find(b"\r\n\r\n")]
            found = _MID_RE.search(head)
            self.ids[found.group(1) if found else b"<none>"] += 1
            self.count.value += 1  # one writer (this event loop): progress for the poller
        return "250 OK"


def _run_sink(port: int, count: Any, ready: Any, conn: Any) -> None:
    from aiosmtpd.controller import Controller

    handler = _Handler(count)
    controller = Controller(handler, hostname="127.0.0.1", port=port, ready_timeout=30)
    controller.start()
    ready.set()
    conn.recv()  # the parent asks for the tally when the run is over
    controller.stop()
    conn.send((dict(handler.ids), handler.raw))


class Sink:
    """aiosmtpd in its own process; `received` is live, `tally()` ends it and returns
    ({Message-ID: times received}, raw baseline messages received)."""

    def __init__(self) -> None:
        ctx = mp.get_context("fork")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self._count = ctx.Value("q", 0, lock=False)
        ready = ctx.Event()
        self._conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=_run_sink, args=(self.port, self._count, ready, child), daemon=True
        )
        self.proc.start()
        if not ready.wait(30):
            raise RuntimeError("the aiosmtpd sink did not start")

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def received(self) -> int:
        return int(self._count.value)

    def tally(self) -> tuple[dict[bytes, int], int]:
        self._conn.send("tally")
        ids, raw = self._conn.recv()
        self.proc.join(10)
        return ids, raw

"""Subscriber import throughput, against baselines measured in the same run.

    .venv/bin/python benchmarks/bench_import.py [--sizes 10000,100000] [--db sqlite,postgres]
                                                [--old-n 1000]

For each database and size N, a fresh database gets N generated subscribers (addresses at ~2,000
domains, 1-3 rules each from a vocabulary, a third following a topic, 5 % unsubscribed and 1 %
bounced, mixed schedules and zones) as a CSV file on disk, through:

- **import**: `import_file` (the code behind ``paperalerts subscribers import`` and the admin
  page): read, check every row (address, schedule, every rule), write in chunks;
- **re-import**: the same file again (every row checked, nothing to write: the idempotent case);
- **dry run**: the same file with ``dry_run=True`` on the database already holding it;
- **export**: `export_lines` to a file;
- baseline **raw executemany**: the same subscriber and rule rows, already built, inserted with
  one executemany per table and chunk (no reading, no checks): the floor of what the database
  takes;
- baseline **old per-row**: the path the admin import took before (`create_subscriber` per row,
  one ORM object and audit row each), on the first ``--old-n`` rows only (it runs ~100 rows/s).

Prints rows/s for each, the ratios import / raw and import / old, and the import's CPU per row
(this process and the PostgreSQL backend, read from /proc), which a loaded machine does not
distort. Goal: import >= 5,000 rows/s into PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.core.subscriber_file import write_lines
from paperalerts.core.subscribers import check_rule, normalize_email, parse_prefs
from paperalerts.edges.db import make_engine, models, session_factory, upgrade
from paperalerts.edges.db.bulk import table_of
from paperalerts.edges.db.engine import transaction
from paperalerts.pipeline import subscriptions as subs
from paperalerts.pipeline.subscriber_import import export_lines, import_file

POSTGRES = os.environ.get("PAPERALERTS_TEST_POSTGRES_URL",
                          "postgresql+psycopg://postgres@127.0.0.1:5432/test")
NOW = datetime(2026, 5, 8, 6, 0, tzinfo=UTC)
TOPICS = ("Agents", "Diffusion", "Robotics")
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Europe/Paris",
         "America/Los_Angeles", "Asia/Kolkata", "Australia/Sydney")
WORDS = ("diffusion", "transformer", "agent", "reinforcement", "graph", "retrieval", "vision",
         "speech", "robot", "protein", "quantum", "llm", "benchmark", "alignment", "sparse",
         "distillation", "multimodal", "segmentation", "tokenizer", "reasoning")


def generate(n: int, seed: int = 18) -> list[dict[str, Any]]:
    """N subscriber rows in the file's shape (deterministic for a seed)."""
    rnd = random.Random(seed)
    # Addresses' domains as lists have them: a few large providers and a long tail (Zipf).
    domains = [f"mail{i}.example.org" for i in range(2_000)]
    weights = [1 / (rank + 1) for rank in range(len(domains))]
    rows = []
    for i in range(n):
        k = rnd.random()
        status = "unsubscribed" if k < 0.05 else "bounced" if k < 0.06 else "active"
        rules = []
        for _ in range(rnd.randint(1, 3)):
            a, b = rnd.sample(WORDS, 2)
            rules.append(rnd.choice((a, f"{a} {b}", f'title:"{a} {b}"', f"{a} OR {b}",
                                     f"{a}* -{b}", f"abstract:{a} upvotes:>={rnd.randint(1, 50)}")))
        rows.append({
            "email": f"user{i}.{rnd.randint(0, 999)}@{rnd.choices(domains, weights)[0]}",
            "name": f"Subscriber {i}", "status": status,
            "frequency": rnd.choice(("daily", "daily", "weekly", "instant")),
            "send_hour": rnd.randint(0, 23), "weekday": rnd.randint(0, 6),
            "timezone": rnd.choice(ZONES),
            "topics": [rnd.choice(TOPICS)] if rnd.random() < 0.33 else [],
            "rules": list(dict.fromkeys(rules)),
        })
    return rows


@contextmanager
def database(kind: str, tmp: Path) -> Iterator[sessionmaker[Session]]:
    """A fresh, migrated database with the three topics; dropped afterwards."""
    admin = None
    if kind == "sqlite":
        url = f"sqlite:///{tmp / f'{uuid.uuid4().hex}.db'}"
    else:
        name = f"pa_bench_import_{uuid.uuid4().hex[:10]}"
        admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        url = POSTGRES.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(url)
    upgrade(engine)
    factory = session_factory(engine)
    with transaction(factory) as s:
        for t in TOPICS:
            s.add(models.Topic(name=t, query=t.lower(), normalized=t.lower()))
    try:
        yield factory
    finally:
        engine.dispose()
        if admin is not None:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a local process (the PostgreSQL backend serving us)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_per_row(factory: sessionmaker[Session], n: int, fn: Callable[[], object]
                ) -> tuple[float, float, float]:
    """(rows/s, this process's CPU us per row, the database backend's CPU us per row; 0 for
    SQLite, which runs inside this process). The pool keeps one connection, so the backend
    measured is the one that did the work."""
    backend = None
    with factory() as s:
        if s.get_bind().dialect.name == "postgresql":
            backend = int(s.execute(text("SELECT pg_backend_pid()")).scalar_one())
    server0 = _cpu_seconds(backend) if backend else 0.0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    fn()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    server = (_cpu_seconds(backend) - server0) if backend else 0.0
    return n / wall, cpu / n * 1e6, server / n * 1e6


def raw_executemany(factory: sessionmaker[Session], rows: list[dict[str, Any]]) -> float:
    """The floor: subscriber and rule rows built beforehand, one executemany per table per
    chunk of 2,000, no reading and no checks. Returns seconds for the writes alone."""
    sub_rows = [{"email": r["email"], "name": r["name"], "status": r["status"],
                 "frequency": r["frequency"], "send_hour": r["send_hour"],
                 "weekday": r["weekday"], "timezone": r["timezone"], "created_at": NOW,
                 "next_digest_at": NOW} for r in rows]
    rule_rows = [(r["email"], q) for r in rows for q in r["rules"]]
    sub_t, rule_t = table_of(models.Subscriber), table_of(models.Rule)
    start = time.perf_counter()
    with transaction(factory) as s:
        conn = s.connection()
        for i in range(0, len(sub_rows), 2_000):
            conn.execute(sub_t.insert(), sub_rows[i:i + 2_000])
        ids: dict[str, int] = dict(conn.execute(text("SELECT email, id FROM subscriber")).all())
        batch = [{"subscriber_id": ids[e], "query": q, "normalized": q, "name": "",
                  "enabled": True, "created_at": NOW, "updated_at": NOW} for e, q in rule_rows]
        for i in range(0, len(batch), 4_000):
            conn.execute(rule_t.insert(), batch[i:i + 4_000])
    return time.perf_counter() - start


def old_per_row(factory: sessionmaker[Session], rows: list[dict[str, Any]]) -> float:
    """The admin import before: each row checked, then `create_subscriber` (ORM object, audit
    row, one rule object each)."""
    topics = {}
    with factory() as s:
        topics = {t.name: t.id for t in s.query(models.Topic)}

    def run() -> None:
        with transaction(factory) as s:
            for r in rows:
                email = normalize_email(r["email"])
                prefs = parse_prefs(r["frequency"], r["send_hour"], r["weekday"], r["timezone"])
                for q in r["rules"]:
                    check_rule(q)
                status = r["status"] if r["status"] in subs.NEW_STATUSES else "paused"
                subs.create_subscriber(s, email, prefs, NOW, "bench", status=status,
                                       name=r["name"], rules=r["rules"],
                                       topics={topics[t] for t in r["topics"]},
                                       public_only=False)
    return timed(run)


def bench(kind: str, n: int, old_n: int, tmp: Path) -> tuple[dict[str, float], tuple[float, float]]:
    rows = generate(n)
    csv_path = tmp / f"people-{n}.csv"
    with csv_path.open("w", encoding="utf-8", newline="") as f:
        f.writelines(write_lines(rows, "csv"))
    out: dict[str, float] = {}
    with database(kind, tmp) as factory:
        def do_import(dry: bool = False) -> None:
            with csv_path.open("rb") as f:
                summary = import_file(factory, f, "csv", now=NOW, actor="bench", dry_run=dry)
            assert not summary.problems, summary.problems[:3]
        out["import"], client_us, server_us = cpu_per_row(factory, n, do_import)
        out["re-import"] = n / timed(do_import)
        out["dry run"] = n / timed(lambda: do_import(True))
        export_path = tmp / "export.csv"

        def do_export() -> None:
            with export_path.open("w", encoding="utf-8", newline="") as f:
                f.writelines(export_lines(factory, "csv"))
        out["export"] = n / timed(do_export)
    with database(kind, tmp) as factory:
        out["raw executemany"] = n / raw_executemany(factory, rows)
    with database(kind, tmp) as factory:
        k = min(old_n, n)
        out["old per-row"] = k / old_per_row(factory, rows[:k])
    return out, (client_us, server_us)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--db", default="postgres,sqlite")
    ap.add_argument("--old-n", type=int, default=1_000)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    names = ("import", "re-import", "dry run", "export", "raw executemany", "old per-row")
    print(f"{'db':<9}{'N':>8}" + "".join(f"{n:>17}" for n in names)
          + f"{'import/raw':>12}{'import/old':>12}{'import CPU us/row (us+db)':>28}")
    with tempfile.TemporaryDirectory(prefix="pa-bench-import-") as d:
        for kind in args.db.split(","):
            for n in sizes:
                r, (client, server) = bench(kind, n, args.old_n, Path(d))
                print(f"{kind:<9}{n:>8}" + "".join(f"{r[k]:>12,.0f} r/s" for k in names)
                      + f"{r['import'] / r['raw executemany']:>12.2f}"
                      + f"{r['import'] / r['old per-row']:>11.1f}x"
                      + f"{client:>14.0f} + {server:.0f}", flush=True)
    print("CPU per row: this process + the PostgreSQL backend; 1e6 / their sum is the rows/s "
          "of a machine with a core to spare for each (the wall figures share it).")


if __name__ == "__main__":
    main()

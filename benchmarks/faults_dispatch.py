"""Fault-matrix rows for dispatch and outages (issue 21 items 1 and 2), each against the old
behaviour measured in the same run.

    .venv/bin/python benchmarks/faults_dispatch.py [--n 1000]

(`benchmarks/bench_faults.py` prints these rows with the rest of the fault matrix.) Each row runs
on a fresh PostgreSQL database with `n` daily subscribers (one word rule each, two real HF days
scraped and matched: ~n digests), sends through the real `SMTPMailer` to an aiosmtpd sink
(tests/smtp_sink.py) that counts every message by Message-ID, repeats included, and drives time
with the clock the steps take (hours of outage in seconds):

- *matching behind at the send-hour tick*: the day's scrape is still unmatched when dispatch runs
  at the send hour; matching finishes a minute later, dispatch runs again, everything is sent.
  Baseline: the same with no wait (``match_wait`` 0, today's main): every digest skipped.
- *relay down 2 h*: the sink is stopped for two simulated hours from the send hour, the scheduler's
  minute (sweep + sends) keeps running; then the relay returns and the minutes go on for up to an
  hour. Defaults (retry window 36 h, backoff to 30 min, breaker at 10 failures). Baseline: the old
  defaults (8 attempts, backoff to 1 h, no breaker), on n/5 subscribers (each of its deliveries is
  rendered and refused 8 times; at n it takes most of an hour on a loaded 2-core machine).

"lost" counts (reader, paper) pairs that were matched and not in a message the sink received by
the end of the row; "dup" counts extra copies of a Message-ID.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.core.rules import parse, to_text
from paperalerts.edges.config import Settings
from paperalerts.edges.db import make_engine, repo, session_factory, upgrade
from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.edges.mailer import SMTPMailer
from paperalerts.faces.step_config import delivery_config
from paperalerts.pipeline import (
    DeliveryConfig,
    dispatch_due_digests,
    match_new_events,
    relay_gate,
    scrape_source,
    send_due,
)

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from smtp_sink import SMTPSink  # noqa: E402  (the tests' sink, importable once tests/ is on the path)

FIXTURES = Path(os.environ.get("PAPERALERTS_FIXTURES_DIR", REPO.parent / "shared" / "fixtures"))
PG = os.environ.get(
    "PAPERALERTS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
DAYS = ("2024-03-12", "2024-03-13")
WORDS = ["model", "data", "language", "large", "generation", "image", "training", "video",
         "learning", "diffusion", "text", "benchmark", "vision", "3d"]  # fmt: skip
SEND = datetime(2024, 3, 14, 8, 0, tzinfo=UTC)  # everyone's send time
Factory = sessionmaker[Session]


@dataclass(frozen=True)
class Row:
    """One line of the fault matrix: the fault, deliveries made, pairs lost, duplicate copies,
    what happened, and the same fault under the old behaviour."""

    fault: str
    deliveries: int
    lost: int
    duplicates: int
    result: str
    baseline: str
    seconds: float


class Clock:
    """The time the steps read: moved by the row, not by the wall."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@contextmanager
def database() -> Iterator[Factory]:
    """A fresh, migrated PostgreSQL database, dropped afterwards."""
    name = f"faults_dispatch_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(PG.rsplit("/", 1)[0] + f"/{name}")
    try:
        upgrade(engine)
        relay_gate.forget()
        yield session_factory(engine)
    finally:
        engine.dispose()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def populate(db: Factory, n: int, *, match: bool) -> None:
    """`n` daily subscribers due at SEND, one word rule each; two real days scraped ten
    minutes before SEND (and matched when `match`)."""
    with transaction(db) as s:
        src = m.Source(name="hf-daily", kind="hf-api", url="https://e.org", backfill=True)
        s.add(src)
        subs = [
            m.Subscriber(email=f"s{i}@example.org", status="active", frequency="daily",
                         send_hour=8, next_digest_at=SEND)
            for i in range(n)
        ]
        s.add_all(subs)
        s.flush()
        for i, sub in enumerate(subs):
            w = WORDS[i % len(WORDS)]
            s.add(m.Rule(subscriber_id=sub.id, query=w, normalized=to_text(parse(w))))
        repo.bump_rules_version(s)
        sid = src.id
    for day in DAYS:
        body = (FIXTURES / f"hf_api_daily_papers/hf_api_daily_papers_{day}.json").read_bytes()
        scrape_source(db, sid, fetcher=None, now=SEND - timedelta(minutes=10), body=body)
    if match:
        match_new_events(db, now=SEND - timedelta(minutes=9))


def tally(db: Factory, sink: SMTPSink) -> tuple[int, int, int]:
    """(deliveries, pairs lost, duplicate copies) as the sink received them."""
    ids: Counter[str] = Counter()
    got: set[tuple[str, str]] = set()
    for r in list(sink.messages):
        msg = r.message
        ids[str(msg["Message-ID"])] += 1
        body = msg.get_body(("plain",))
        papers = set(re.findall(r"huggingface\.co/papers/(\d{4}\.\d{5})",
                                body.get_content() if body else ""))  # fmt: skip
        got |= {(rcpt, p) for rcpt in r.rcpt_tos for p in papers}
    with db() as s:
        made = int(s.scalar(select(text("count(*)")).select_from(m.Delivery)) or 0)
        q = select(m.Subscriber.email, m.Match.paper_id).join(
            m.Subscriber, m.Subscriber.id == m.Match.subscriber_id
        )
        want = {(a, p) for a, p in s.execute(q)}
    return made, len(want - got), sum(c - 1 for c in ids.values())


def minutes(db: Factory, mailer: SMTPMailer, cfg: DeliveryConfig, clock: Clock, count: int,
            ids: list[int] | None = None, until: Callable[[], bool] | None = None) -> None:
    """The scheduler's minute (the sweep's leftovers sent), `count` times or until `until`."""
    for _ in range(count):
        send_due(db, ids or [], mailer=mailer, cfg=cfg, clock=clock)
        ids = None
        clock.at += timedelta(minutes=1)
        if until is not None and until():
            return


def statuses(db: Factory) -> Counter[str]:
    with db() as s:
        return Counter(s.scalars(select(m.Delivery.status)))


def _send_hour(n: int, cfg: DeliveryConfig) -> tuple[int, int, int, int]:
    """(deliveries, lost, duplicates, digests sent on the day) for the send-hour race."""
    with database() as db, SMTPSink() as sink:
        populate(db, n, match=False)
        clock = Clock(SEND)
        first = dispatch_due_digests(db, cfg, now=clock())  # matching still behind
        match_new_events(db, now=SEND + timedelta(minutes=1))
        clock.at = SEND + timedelta(minutes=2)
        ids = first + dispatch_due_digests(db, cfg, now=clock())
        mailer = SMTPMailer(sink.url, timeout=10)
        try:
            minutes(db, mailer, cfg, clock, 5, ids, until=lambda: "queued" not in statuses(db))
        finally:
            mailer.close()
        made, lost, dup = tally(db, sink)
        return made, lost, dup, len({str(r.message["Message-ID"]) for r in sink.messages})


def send_hour_race(n: int = 1000) -> Row:
    """Matching still running when the send-hour tick dispatches."""
    t = time.perf_counter()
    cfg = defaults()
    made, lost, dup, sent = _send_hour(n, cfg)
    _, b_lost, _, b_sent = _send_hour(n, replace(cfg, match_wait=timedelta(0)))
    return Row("matching behind at the send-hour tick", made, lost, dup,
               f"{sent} digests sent that day", f"{b_sent} sent that day, {b_lost} pairs "
               "not sent (skipped to tomorrow)", time.perf_counter() - t)  # fmt: skip


def _outage(n: int, cfg: DeliveryConfig, hours: float) -> tuple[int, int, int, Counter[str], str]:
    with database() as db, SMTPSink() as sink:
        populate(db, n, match=True)
        clock = Clock(SEND)
        ids = dispatch_due_digests(db, cfg, now=clock())
        sink.stop()
        mailer = SMTPMailer(sink.url, timeout=5)
        try:
            minutes(db, mailer, cfg, clock, int(hours * 60), ids)
            sink.start()
            back = clock()
            minutes(db, mailer, cfg, clock, 60,
                    until=lambda: not {"queued", "sending"} & set(statuses(db)))  # fmt: skip
        finally:
            mailer.close()
        made, lost, dup = tally(db, sink)
        with db() as s:
            spent = int(s.scalar(select(text("sum(attempts)")).select_from(m.Delivery)) or 0)
        after = f"{int((clock() - back).total_seconds() // 60)} min after the relay returned"
        return made, lost, dup, statuses(db), f"{spent} attempts in all; done {after}"


def relay_outage(n: int = 1000, hours: float = 2.0, baseline_n: int = 0) -> Row:
    """The SMTP relay refuses connections for `hours` (simulated) from the send hour. The
    baseline (old defaults: every delivery spends its 8 attempts, each rendered and refused)
    runs on `baseline_n` subscribers (default n/5: it renders ~8 times as many messages)."""
    t = time.perf_counter()
    cfg = defaults()
    made, lost, dup, st, how = _outage(n, cfg, hours)
    old = replace(cfg, max_attempts=8, backoff_max=timedelta(hours=1), breaker_failures=0)
    bn = baseline_n or max(n // 5, 1)
    b_made, b_lost, _, b_st, b_how = _outage(bn, old, hours)
    return Row(f"SMTP relay down {hours:g} h (simulated clock, defaults)", made, lost, dup,
               f"{st['sent']} sent, {st['failed']} failed; {how}",
               f"old defaults, {b_made} deliveries: {b_st['failed']} failed, {b_lost} pairs "
               f"not sent that day; {b_how}", time.perf_counter() - t)  # fmt: skip


def defaults() -> DeliveryConfig:
    """The delivery settings at their defaults (the relay is paced by no rate bucket here)."""
    return delivery_config(Settings(secret_key="b" * 32, mail_from="alerts <a@example.org>"))


ROWS: list[Callable[[int], Row]] = [send_hour_race, relay_outage]


def print_table(rows: Iterable[Row]) -> None:
    """The rows as a Markdown table, each line printed as soon as its row has run."""
    print("| fault | deliveries | lost | dup | result | baseline (same run) | s |", flush=True)
    print("| --- | --- | --- | --- | --- | --- | --- |", flush=True)
    for r in rows:
        print(f"| {r.fault} | {r.deliveries} | {r.lost} | {r.duplicates} | {r.result} | "
              f"{r.baseline} | {r.seconds:.0f} |", flush=True)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="daily subscribers per row")
    args = ap.parse_args()
    logging.getLogger("paperalerts").setLevel(logging.ERROR)  # the outage logs every refusal
    print_table(row(args.n) for row in ROWS)


if __name__ == "__main__":
    main()

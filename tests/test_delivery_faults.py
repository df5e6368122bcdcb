"""Fault test of the delivery state machine (issue 10): real Celery worker processes on Redis,
PostgreSQL, an aiosmtpd sink. Workers are SIGKILLed in the middle of SMTP transactions (twice,
so rows are re-claimed more than once), their leases run out while several sweeps race to hand
the rows out again and in-process senders compete with the workers for the same rows. Counted
as the sink received them, repeats included: every expected (subscriber, paper) arrives exactly
once and no Message-ID arrives twice."""

from __future__ import annotations

import email
import email.policy
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from conftest import REDIS_SERVER, fixture_file, require_redis
from paperalerts.core.rules import parse, to_text
from paperalerts.edges.config import Settings
from paperalerts.edges.db import make_engine, repo, session_factory, upgrade
from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.edges.mailer import SMTPMailer
from paperalerts.faces.step_config import delivery_config
from paperalerts.faces.tasks import make_celery
from paperalerts.pipeline import (
    DeliveryConfig,
    dispatch_due_digests,
    match_new_events,
    scrape_source,
    send_due,
    sweep,
)
from smtp_sink import SMTPSink

pytestmark = pytest.mark.slow
BROKER = f"{REDIS_SERVER}/13"
WORDS = ["model", "data", "language", "large", "generation", "image", "training", "video",
         "learning", "diffusion", "text", "benchmark", "vision", "3d"]  # fmt: skip
DAYS = ("2024-03-12", "2024-03-13")
LEASE = 2
Factory = sessionmaker[Session]


def wall() -> datetime:
    return datetime.now(UTC)


def wait_for(cond: Callable[[], Any], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Workers:
    """`paperalerts.faces.tasks` worker processes, each in its own process group."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log, self.procs = env, log, []  # type: list[subprocess.Popen[bytes]]

    def start(self, n: int, concurrency: int = 2) -> None:
        before = self.log.read_bytes().count(b" ready.") if self.log.exists() else 0
        for _ in range(n):
            name = f"w{len(self.procs)}@%h"
            cmd = [sys.executable, "-m", "celery", "-A", "paperalerts.faces.tasks", "worker",
                   "-Q", "mail", "-c", str(concurrency), "-l", "info", "-n", name,
                   "--without-gossip", "--without-mingle", "--without-heartbeat",
                   "-P", "prefork"]  # fmt: skip
            out = self.log.open("ab")
            self.procs.append(
                subprocess.Popen(
                    cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
            )
        wait_for(lambda: self.log.read_bytes().count(b" ready.") >= before + n, 90, "workers")

    def kill_all(self, sig: int = signal.SIGKILL) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, sig)
                p.wait(30)
        self.procs = []


@pytest.fixture
def world(tmp_path: Path, fresh_postgres_url: str) -> Iterator[dict[str, Any]]:
    """PostgreSQL with subscribers whose digests are due and dispatched, a sink, a broker."""
    require_redis()
    fixture_file(f"hf_api_daily_papers/hf_api_daily_papers_{DAYS[0]}.json")
    r = redis.Redis.from_url(BROKER)
    r.flushdb()
    sink = SMTPSink().start()
    env = {
        **os.environ,
        "PAPERALERTS_DATABASE_URL": fresh_postgres_url,
        "PAPERALERTS_BROKER_URL": BROKER,
        "PAPERALERTS_SMTP_URL": sink.url,
        "PAPERALERTS_SECRET_KEY": "fault-secret-" + "x" * 20,
        "PAPERALERTS_MAIL_FROM": "paperalerts <alerts@example.org>",
        "PAPERALERTS_SMTP_RATE": "0",
        "PAPERALERTS_DELIVERY_LEASE_SECONDS": str(LEASE),
        "PAPERALERTS_DELIVERY_BACKOFF_SECONDS": "1",
        "PAPERALERTS_DELIVERY_STALE_SECONDS": "1",
    }
    settings = Settings(
        database_url=fresh_postgres_url,
        broker_url=BROKER,
        secret_key=env["PAPERALERTS_SECRET_KEY"],
        mail_from=env["PAPERALERTS_MAIL_FROM"],
        smtp_url=sink.url,
        delivery_lease_seconds=LEASE,
        delivery_backoff_seconds=1,
        delivery_stale_seconds=1,
    )
    engine = make_engine(fresh_postgres_url)
    upgrade(engine)
    db: Factory = session_factory(engine)
    workers = Workers(env, tmp_path / "workers.log")
    client = make_celery(settings)
    try:
        yield {"db": db, "sink": sink, "workers": workers, "client": client,
               "cfg": delivery_config(settings)}  # fmt: skip
    finally:
        workers.kill_all(signal.SIGKILL)
        sink.stop()
        client.close()
        engine.dispose()
        r.flushdb()
        r.close()


def populate(db: Factory, n_subscribers: int) -> None:
    """Daily subscribers with one word rule each; two real days scraped and matched; all due."""
    with transaction(db) as s:
        src = m.Source(name="hf-daily", kind="hf-api", url="https://e.org", backfill=True)
        s.add(src)
        for i in range(n_subscribers):
            word = WORDS[i % len(WORDS)]
            sub = m.Subscriber(email=f"s{i}@example.org", status="active", frequency="daily",
                               next_digest_at=wall() + timedelta(days=1))  # fmt: skip
            s.add(sub)
            s.flush()
            s.add(m.Rule(subscriber_id=sub.id, query=word, normalized=to_text(parse(word))))
        repo.bump_rules_version(s)
        sid = src.id
    for day in DAYS:
        body = fixture_file(f"hf_api_daily_papers/hf_api_daily_papers_{day}.json").read_bytes()
        scrape_source(db, sid, fetcher=None, now=wall(), body=body)
    match_new_events(db, now=wall())
    with transaction(db) as s:
        s.execute(update(m.Subscriber).values(next_digest_at=wall() - timedelta(seconds=1)))


def expected_pairs(db: Factory) -> Counter[tuple[str, str]]:
    """Every match row is one (address, paper) that must arrive exactly once."""
    with db() as s:
        q = select(m.Subscriber.email, m.Match.paper_id).join(
            m.Subscriber, m.Subscriber.id == m.Match.subscriber_id
        )
        return Counter((a, p) for a, p in s.execute(q))


def received(sink: SMTPSink) -> tuple[Counter[str], Counter[tuple[str, str]]]:
    """As the sink received them, repeats counted: copies per Message-ID, and per (recipient,
    paper linked in the text part)."""
    ids: Counter[str] = Counter()
    pairs: Counter[tuple[str, str]] = Counter()
    for r in list(sink.messages):
        msg = email.message_from_bytes(r.data, policy=email.policy.default)
        ids[str(msg["Message-ID"])] += 1
        text = next(p for p in msg.walk() if p.get_content_type() == "text/plain").get_content()
        for paper in set(re.findall(r"huggingface\.co/papers/(\d{4}\.\d{5})", text)):
            for rcpt in r.rcpt_tos:
                pairs[(rcpt, paper)] += 1
    return ids, pairs


def statuses(db: Factory) -> Counter[str]:
    with db() as s:
        return Counter(s.scalars(select(m.Delivery.status)))


def test_killed_workers_and_racing_sweeps_deliver_each_paper_exactly_once(
    world: dict[str, Any],
) -> None:
    """Two rounds of SIGKILLed workers stuck mid-SMTP, then 4 sweep threads re-enqueueing and
    2 in-process senders competing with 2 new workers as the leases run out: each expected
    (subscriber, paper) received exactly once, no Message-ID received twice, every row sent."""
    db, sink, workers, client = world["db"], world["sink"], world["workers"], world["client"]
    cfg: DeliveryConfig = world["cfg"]
    populate(db, 16)
    want = expected_pairs(db)
    ids = dispatch_due_digests(db, cfg, now=wall())
    assert len(ids) == 16 and len(want) > 40

    todo = ids
    for _ in range(2):  # round 2 kills workers holding the rows re-claimed from round 1
        sink.hold(True)
        workers.start(2)
        for did in todo:
            client.send_task("paperalerts.send_delivery", args=[did])
        wait_for(lambda: sink.held >= 4, 60, "4 sends stuck in RCPT")
        workers.kill_all(signal.SIGKILL)
        assert statuses(db)["sending"] == 4 and not sink.messages
        sink.hold(False)
        time.sleep(LEASE + 0.5)  # the dead workers' leases run out
        redis.Redis.from_url(BROKER).flushdb()  # and their queued wake-ups are lost too
        with db() as s:
            todo = list(s.scalars(select(m.Delivery.id).where(m.Delivery.status == "sending")))

    sink.slow_data(0.4)  # sends overlap the sweeps; a run of them outlasts a lease
    workers.start(2)
    stop = threading.Event()
    errors: list[BaseException] = []

    def sweeper() -> None:
        try:
            while not stop.is_set():
                for did in sweep(db, cfg, now=wall()):
                    client.send_task("paperalerts.send_delivery", args=[did])
                time.sleep(0.05)
        except BaseException as e:  # surfaced by the assertion below
            errors.append(e)

    def sender() -> None:
        mailer = SMTPMailer(sink.url, timeout=10)
        try:
            while not stop.is_set():
                send_due(db, [], mailer=mailer, cfg=cfg, clock=wall)
                time.sleep(0.05)
        except BaseException as e:
            errors.append(e)
        finally:
            mailer.close()

    threads = [threading.Thread(target=f) for f in [sweeper] * 4 + [sender] * 2]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: statuses(db) == Counter({"sent": 16}), 120, "every delivery sent")
        time.sleep(LEASE + 1)  # anything still in flight would now arrive
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not errors, errors
    copies, pairs = received(sink)
    assert len(copies) == 16
    assert [i for i, n in copies.items() if n > 1] == [], "a Message-ID was received twice"
    assert pairs == want, "every (subscriber, paper) exactly once"
    with db() as s:
        attempts = Counter(s.scalars(select(m.Delivery.attempts)))
    assert sum(n for a, n in attempts.items() if a >= 3) >= 4, attempts  # killed twice

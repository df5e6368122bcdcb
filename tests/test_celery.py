"""End to end through a real Celery worker on the real Redis, a real SMTP server (aiosmtpd) and a
local HTTP server serving the fixtures. Fault tests assert every matched paper is delivered
exactly once (by Message-ID and by content) through SMTP outages, 4xx/5xx replies, a SIGKILLed
worker, a flushed broker and duplicate task deliveries."""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from conftest import REDIS_SERVER, fixture_file, require_redis
from paperalerts.core.rules import parse, to_text
from paperalerts.edges.config import Settings
from paperalerts.edges.db import make_engine, repo, session_factory, upgrade
from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.faces.step_config import delivery_config
from paperalerts.faces.tasks import make_celery
from paperalerts.pipeline import dispatch_due_digests, match_new_events
from paperalerts.pipeline import scrape_source as run_scrape
from smtp_sink import SMTPSink

pytestmark = pytest.mark.slow
BROKER = f"{REDIS_SERVER}/14"
DAY = "hf_api_daily_papers/hf_api_daily_papers_2024-03-12.json"
RULES = {"ann@example.org": "video", "bob@example.org": "model", "carol@example.org": "xylophone"}
Factory = sessionmaker[Session]


def expected_papers() -> dict[str, set[str]]:
    """Per subscriber, the ids whose title or abstract contains their word (read from the file)."""
    items = json.loads(fixture_file(DAY).read_bytes())
    out = {}
    for addr, word in RULES.items():
        ids = {
            i["paper"]["id"]
            for i in items
            if re.search(
                rf"\b{word}s?\b", (i["paper"]["title"] + " " + i["paper"]["summary"]).lower()
            )
        }
        if ids:
            out[addr] = ids
    return out


class Stack:
    """A database, an SMTP sink and a Celery worker subprocess sharing one configuration."""

    def __init__(self, tmp: Path, base_url: str, db_url: str) -> None:
        self.sink = SMTPSink().start()
        self.db_url = db_url
        self.env = {
            **os.environ,
            "PAPERALERTS_DATABASE_URL": db_url,
            "PAPERALERTS_BROKER_URL": BROKER,
            "PAPERALERTS_SMTP_URL": self.sink.url,
            "PAPERALERTS_SECRET_KEY": "test-secret-" + "x" * 20,
            "PAPERALERTS_ALLOW_PRIVATE_URLS": "true",
            "PAPERALERTS_MAIL_FROM": "paperalerts <alerts@example.org>",
            "PAPERALERTS_SMTP_RATE": "0",
            "PAPERALERTS_FETCH_RETRIES": "0",
            "PAPERALERTS_DELIVERY_LEASE_SECONDS": "3",
            "PAPERALERTS_DELIVERY_BACKOFF_SECONDS": "1",
            "PAPERALERTS_DELIVERY_STALE_SECONDS": "1",
        }
        self.settings = Settings(
            database_url=db_url, broker_url=BROKER, secret_key=self.env["PAPERALERTS_SECRET_KEY"]
        )
        engine = make_engine(db_url)
        upgrade(engine)
        self.db: Factory = session_factory(engine)
        self.client = make_celery(self.settings)
        self.worker: subprocess.Popen[bytes] | None = None
        self.log = tmp / "worker.log"
        with transaction(self.db) as s:
            s.add(m.Source(name="hf-daily", kind="hf-api", backfill=True, url=f"{base_url}/{DAY}"))
            for addr, q in RULES.items():
                # Not due until the test says so: a digest due before the scrape finished would
                # rightly be skipped (nothing matched yet) and the papers wait for tomorrow's.
                sub = m.Subscriber(
                    email=addr,
                    status="active",
                    frequency="daily",
                    next_digest_at=m.utcnow() + timedelta(days=1),
                )
                s.add(sub)
                s.flush()
                s.add(m.Rule(subscriber_id=sub.id, query=q, normalized=to_text(parse(q)), name=q))
            repo.bump_rules_version(s)

    def start_worker(self, concurrency: int = 2) -> None:
        cmd = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "paperalerts.faces.tasks",
            "worker",
            "-Q",
            "tick,scrape,match,mail",
            "-c",
            str(concurrency),
            "-l",
            "info",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-P",
            "prefork",
        ]
        self.worker = subprocess.Popen(
            cmd,
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(lambda: b"ready" in self.log.read_bytes(), 60, "worker ready")

    def kill_worker(self, sig: int = signal.SIGKILL) -> None:
        if self.worker and self.worker.poll() is None:
            os.killpg(self.worker.pid, sig)
            self.worker.wait(30)
        self.worker = None

    def make_due(self) -> None:
        """Wait for every expected match row, then make all digests due now."""
        want = sum(len(v) for v in expected_papers().values())

        def matched() -> bool:
            with self.db() as s:
                return len(s.scalars(select(m.Match.id)).all()) >= want

        wait_for(matched, 60, "the matches")
        with transaction(self.db) as s:
            for sub in s.scalars(select(m.Subscriber)):
                sub.next_digest_at = m.utcnow() - timedelta(seconds=1)

    def tick(self) -> None:
        self.client.send_task("paperalerts.tick")

    def deliveries(self) -> list[m.Delivery]:
        with self.db() as s:
            return list(s.scalars(select(m.Delivery).order_by(m.Delivery.id)))

    def received(self) -> dict[str, dict[str, set[str]]]:
        """Per recipient, Message-ID -> the HF paper ids linked in that message."""
        out: dict[str, dict[str, set[str]]] = defaultdict(dict)
        for r in list(self.sink.messages):
            msg = email.message_from_bytes(r.data, policy=email.policy.default)
            ids: set[str] = set()
            for part in msg.walk():
                if part.get_content_type() == "text/plain":
                    ids |= set(
                        re.findall(r"huggingface\.co/papers/(\d{4}\.\d{5})", part.get_content())
                    )
            out[str(msg["To"])][str(msg["Message-ID"])] = ids
        return out

    def close(self) -> None:
        self.kill_worker(signal.SIGTERM)
        self.sink.stop()
        self.client.close()


def wait_for(cond: Callable[[], Any], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def settle(stack: Stack, timeout: float = 60) -> None:
    """Tick until every delivery is sent or failed and every expected recipient has mail."""
    want = expected_papers()

    def done() -> bool:
        ds = stack.deliveries()
        if len(ds) < len(want) or any(d.status in ("queued", "sending") for d in ds):
            stack.tick()
            return False
        return True

    wait_for(done, timeout, "all deliveries settled")


def assert_exactly_once(
    stack: Stack,
    skip: set[str] = frozenset(),  # type: ignore[assignment]
    *,
    same_id_again: bool = False,
) -> None:
    """Each expected recipient got exactly one Message-ID carrying exactly their papers; no one
    else got anything; and, counted as received, no Message-ID came twice (unless
    `same_id_again`: a send cut off after the server took its DATA is repeated, same id)."""
    if not same_id_again:
        ids = Counter(str(r.message["Message-ID"]) for r in list(stack.sink.messages))
        assert [i for i, n in ids.items() if n > 1] == [], "a Message-ID was received twice"
    got = stack.received()
    want = {a: ids for a, ids in expected_papers().items() if a not in skip}
    assert set(got) - skip == set(want)
    for addr, ids in want.items():
        assert len(got[addr]) == 1, f"{addr} got {len(got[addr])} distinct messages"
        assert next(iter(got[addr].values())) == ids


@pytest.fixture(params=["sqlite", "postgres"])
def stack(request: pytest.FixtureRequest, tmp_path: Path, static_server: str) -> Iterator[Stack]:
    require_redis()
    r = redis.Redis.from_url(BROKER)
    r.flushdb()
    db_url = (
        f"sqlite:///{tmp_path / 'pa.db'}"
        if request.param == "sqlite"
        else str(request.getfixturevalue("fresh_postgres_url"))
    )
    st = Stack(tmp_path, static_server, db_url)
    try:
        yield st
    finally:
        st.close()
        r.flushdb()
        r.close()


def test_end_to_end_each_subscriber_gets_exactly_their_papers(stack: Stack) -> None:
    """tick -> scrape (local HTTP) -> match -> dispatch -> SMTP, through the worker; more ticks
    send nothing more."""
    assert set(expected_papers()) == {"ann@example.org", "bob@example.org"}
    stack.start_worker()
    stack.tick()
    stack.make_due()
    settle(stack)
    assert_exactly_once(stack)
    for _ in range(3):
        stack.tick()
    time.sleep(2)
    assert_exactly_once(stack)
    assert all(d.status == "sent" for d in stack.deliveries())


def test_smtp_server_down_then_back(stack: Stack) -> None:
    """Sends fail while the SMTP server is down, retry with backoff, and go out once after."""
    stack.sink.stop()
    stack.start_worker()
    stack.tick()
    stack.make_due()
    stack.tick()
    wait_for(
        lambda: any(d.attempts >= 1 and d.status == "queued" for d in stack.deliveries()),
        60,
        "a failed attempt",
    )
    assert all(d.status != "sent" for d in stack.deliveries())
    stack.sink.restart()
    settle(stack)
    assert_exactly_once(stack)


def test_451_then_250(stack: Stack) -> None:
    """A temporary 451 on DATA is retried; every paper still arrives once."""
    stack.sink.fail_next("DATA", 1, "451 4.3.0 mailbox busy, try later")
    stack.start_worker()
    stack.tick()
    stack.make_due()
    settle(stack)
    assert_exactly_once(stack)
    assert max(d.attempts for d in stack.deliveries()) == 2


def test_550_for_one_address_only_that_one_fails(stack: Stack) -> None:
    """A 550 5.1.1 fails bob's delivery for good and adds to his bounce score; ann's goes out."""
    stack.sink.reject("bob@example.org", "550 5.1.1 user unknown")
    stack.start_worker()
    stack.tick()
    stack.make_due()
    settle(stack)
    assert_exactly_once(stack, skip={"bob@example.org"})
    with stack.db() as s:
        bob = s.scalars(select(m.Subscriber).where(m.Subscriber.email == "bob@example.org")).one()
        assert bob.bounce_score == 1
        assert {
            d.status
            for d in s.scalars(select(m.Delivery).where(m.Delivery.subscriber_id == bob.id))
        } == {"failed"}


def test_worker_sigkilled_while_sending(stack: Stack) -> None:
    """The worker dies (SIGKILL) mid-SMTP-transaction; after its lease the sweep hands the row to
    a new worker. A message the server took in the last instant is re-sent with the same
    Message-ID, so de-duplicated by Message-ID each paper arrives exactly once."""
    stack.sink.slow_data(4)
    stack.start_worker()
    stack.tick()
    stack.make_due()
    stack.tick()
    wait_for(lambda: any(d.status == "sending" for d in stack.deliveries()), 60, "a send")
    time.sleep(0.5)
    stack.kill_worker()
    stack.sink.slow_data(0)
    stack.start_worker()
    settle(stack, timeout=90)
    assert_exactly_once(stack, same_id_again=True)


def test_redis_flushall_mid_run_the_sweep_recovers(stack: Stack) -> None:
    """Deliveries whose wake-ups were wiped from the broker are found by the sweep and sent."""
    with Fetcher_for(stack) as f:
        run_scrape(stack.db, 1, fetcher=f, now=m.utcnow())
    match_new_events(stack.db, now=m.utcnow())
    stack.make_due()
    ids = dispatch_due_digests(
        stack.db, delivery_config(stack.settings), now=m.utcnow()
    )
    assert len(ids) == 2
    for did in ids:
        stack.client.send_task("paperalerts.send_delivery", args=[did])
    redis.Redis.from_url(BROKER).flushdb()  # all the broker holds
    stack.start_worker()
    time.sleep(1.5)  # older than the stale threshold
    settle(stack)
    assert_exactly_once(stack)


def test_same_send_task_delivered_twice_at_once(stack: Stack) -> None:
    """Two workers handed the same delivery at once: one claims and sends, the other skips."""
    with Fetcher_for(stack) as f:
        run_scrape(stack.db, 1, fetcher=f, now=m.utcnow())
    match_new_events(stack.db, now=m.utcnow())
    stack.make_due()
    ids = dispatch_due_digests(
        stack.db, delivery_config(stack.settings), now=m.utcnow()
    )
    stack.sink.slow_data(1)
    for did in ids:
        for _ in range(2):
            stack.client.send_task("paperalerts.send_delivery", args=[did])
    stack.start_worker(concurrency=4)
    settle(stack)
    assert len(stack.sink.messages) == 2
    assert_exactly_once(stack)


def Fetcher_for(stack: Stack) -> Any:
    from paperalerts.edges.fetch import Fetcher

    return Fetcher(
        timeout=5, retries=0, backoff=0, max_bytes=10**7, max_retry_after=0, allow_private=True
    )


def diffusion_ids(rel: str) -> set[str]:
    items = json.loads(fixture_file(rel).read_bytes())
    return {
        i["paper"]["id"]
        for i in items
        if "diffusion" in (i["paper"]["title"] + " " + i["paper"]["summary"]).lower()
    }


def test_cli_subscriber_gets_one_digest_per_period_through_the_worker(stack: Stack) -> None:
    """A subscriber and rule added with the CLI get one digest per period through a real worker
    and SMTP server, each with exactly that period's matching papers."""
    cli = [sys.executable, "-m", "paperalerts"]
    for args in (
        ["subscribers", "add", "dave@example.org", "--confirmed"],
        ["rules", "add", "dave@example.org", "diffusion", "--name", "Diffusion"],
    ):
        r = subprocess.run([*cli, *args], env=stack.env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
    day1, day2 = DAY, DAY.replace("03-12", "03-13")
    stack.start_worker()
    periods = []
    for rel in (day1, day2):
        with transaction(stack.db) as s:
            src = s.scalars(select(m.Source)).one()
            src.url = src.url.rsplit("/", 2)[0] + "/" + rel
            src.next_run_at = None
            for sub in s.scalars(select(m.Subscriber)):
                sub.next_digest_at = m.utcnow() + timedelta(days=1)
        stack.tick()
        want = diffusion_ids(rel)
        assert want
        wait_for(lambda w=want: _matched(stack, "dave@example.org") >= w, 60, "dave's matches")
        with transaction(stack.db) as s:
            dave = s.scalars(
                select(m.Subscriber).where(m.Subscriber.email == "dave@example.org")
            ).one()
            # Two periods: yesterday's digest (overdue), then today's.
            dave.next_digest_at = m.utcnow() - timedelta(days=1 - len(periods), seconds=1)
        n = len(periods)
        wait_for(
            lambda n=n: (stack.tick(), len(stack.received().get("dave@example.org", {})) > n)[1],
            60,
            "dave's digest",
        )
        periods.append(want)
    got = stack.received()["dave@example.org"]
    assert len(got) == 2
    assert sorted(map(sorted, got.values())) == sorted(map(sorted, periods))


def _matched(stack: Stack, addr: str) -> set[str]:
    with stack.db() as s:
        q = (
            select(m.Match.paper_id)
            .join(m.Subscriber, m.Subscriber.id == m.Match.subscriber_id)
            .where(m.Subscriber.email == addr)
        )
        return set(s.scalars(q))

"""A lease covers the send (issue 21 items 3-5), on PostgreSQL through a real SMTP sink, with a
rival sender that retakes every lease the moment it runs out and sends it at once:

- a slow relay (each message takes most of a lease) never lets a claimed row's lease run out:
  the heartbeat extends the chunk's leases before each transaction;
- the shared rate bucket's wait happens before the claim, so a long wait (other processes booked
  the relay's next seconds) holds no lease;
- a database blip right after the relay's 250 does not send again: the write is retried on a
  fresh connection;
- Redis down slows nothing to a halt: the shared bucket falls back to a local one, says so once,
  and goes back to Redis when it answers;
- settings whose lease is shorter than one SMTP exchange are refused at start.
Counted at the sink by Message-ID, repeats included."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from fault_support import FastClock, PrivateRedis, TCPProxy, copies_by_message_id
from paperalerts.edges.config import Settings
from paperalerts.edges.db import deliveries, make_engine, session_factory, upgrade
from paperalerts.edges.db import models as m
from paperalerts.edges.mailer import SMTPMailer
from paperalerts.edges.ratelimit import RedisTokenBucket
from paperalerts.errors import ConfigError
from paperalerts.pipeline import send_deliveries, send_delivery
from paperalerts.pipeline.deliver import DeliveryConfig
from paperalerts.pipeline.dispatch_digests import dispatch_periodic
from smtp_sink import SMTPSink
from test_deliver import CFG, NOW, Factory, add_subscriber, ingest

pytestmark = pytest.mark.slow
WORDS = ["model", "video", "language", "diffusion", "benchmark", "image", "data", "learning"]


@pytest.fixture
def pg(fresh_postgres_url: str) -> Iterator[Factory]:
    engine = make_engine(fresh_postgres_url)
    upgrade(engine)
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()


def _dispatched(db: Factory, n: int) -> list[int]:
    for i in range(n):
        add_subscriber(db, f"r{i}@example.org", WORDS[i % len(WORDS)])
    ingest(db)
    ids = dispatch_periodic(db, CFG, now=NOW)
    assert len(ids) == n
    return ids


class Rival:
    """Another worker: sweeps with `clock` and sends at once every row whose lease ran out
    (never a queued row: it only competes for leases)."""

    def __init__(self, db: Factory, url: str, cfg: DeliveryConfig, clock: Callable[[], datetime]):
        self.db, self.cfg, self.clock = db, replace(cfg, stale_after=timedelta(days=9)), clock
        self.mailer = SMTPMailer(url, timeout=10)
        self.stop = threading.Event()
        self.retakes = 0
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self.stop.is_set():
            with self.db() as s:
                due = deliveries.to_hand_out(s, now=self.clock(), stale_after=self.cfg.stale_after)
            for did in due:
                o = send_delivery(self.db, did, mailer=self.mailer, cfg=self.cfg, clock=self.clock)
                self.retakes += o.status != "skipped"
            time.sleep(0.05)

    def __enter__(self) -> Rival:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(60)
        self.mailer.close()


def _statuses(db: Factory) -> list[str]:
    with db() as s:
        return list(s.scalars(select(m.Delivery.status)))


def test_a_slow_relay_never_outlives_the_lease(pg: Factory, sink: SMTPSink) -> None:
    """Each message takes 15 s (time runs 10x) and a chunk of 4 is claimed with 40 s leases:
    its third row would be retaken and sent twice without the heartbeat; with it, every row is
    sent once by the batch and the rival never retakes one."""
    ids = _dispatched(pg, 5)
    clock = FastClock(NOW, 10.0)
    cfg = replace(CFG, lease=timedelta(seconds=40))
    sink.slow_data(1.5)
    mailer = SMTPMailer(sink.url, timeout=10)
    with Rival(pg, sink.url, cfg, clock) as rival:
        outs = send_deliveries(pg, ids, mailer=mailer, cfg=cfg, clock=clock)
        time.sleep(1.0)
    mailer.close()
    copies = copies_by_message_id(r.data for r in sink.messages)
    assert [o.status for o in outs] == ["sent"] * 5, outs
    assert len(copies) == 5 and max(copies.values()) == 1, copies
    assert rival.retakes == 0 and _statuses(pg) == ["sent"] * 5


@pytest.mark.redis
def test_the_rate_wait_happens_before_the_claim(
    pg: Factory, sink: SMTPSink, redis_url: str
) -> None:
    """Other processes booked the next 4 s of a 2 msg/s relay: the batch waits them out before
    it claims anything, so its 3 s leases all cover their sends and the rival, retaking any lease
    that runs out, finds none."""
    ids = _dispatched(pg, 3)
    key = f"test:lease-rate:{time.monotonic_ns()}"
    others = RedisTokenBucket(redis_url, 2.0, key=key)
    mine = RedisTokenBucket(redis_url, 2.0, key=key)
    cfg = replace(CFG, lease=timedelta(seconds=3))
    clock = lambda: datetime.now(UTC)  # noqa: E731
    mailer = SMTPMailer(sink.url, limiter=mine, timeout=10)
    with Rival(pg, sink.url, cfg, clock) as rival:
        for _ in range(8):
            others.reserve()
        start = time.monotonic()
        outs = send_deliveries(pg, ids, mailer=mailer, cfg=cfg, clock=clock)
        took = time.monotonic() - start
        time.sleep(4.0)  # a lease that ran out would be retaken by now
    mailer.close()
    others.close()
    mine.close()
    copies = copies_by_message_id(r.data for r in sink.messages)
    assert [o.status for o in outs] == ["sent"] * 3, outs
    assert len(copies) == 3 and max(copies.values()) == 1, copies
    assert rival.retakes == 0 and took >= 4.0


class _BlipAfterAccept:
    """The real mailer; right after the relay's first 250 the database goes away for a while
    (as a PostgreSQL restart does)."""

    def __init__(self, inner: SMTPMailer, proxy: TCPProxy, seconds: float) -> None:
        self.inner, self.proxy, self.seconds, self.blips = inner, proxy, seconds, 0

    def send(self, msg: EmailMessage) -> str:
        reply = self.inner.send(msg)
        if not self.blips:
            self.blips += 1
            self.proxy.blip(self.seconds)
        return reply

    def close(self) -> None:
        self.inner.close()


def test_a_database_blip_after_the_250_does_not_resend(
    fresh_postgres_url: str, sink: SMTPSink
) -> None:
    """PostgreSQL unreachable for 1.5 s right after the relay accepted the first message: its
    `sent` is written once the database is back (on a fresh connection), the batch goes on, and
    a later sweep finds nothing to send again."""
    upgrade(make_engine(fresh_postgres_url))
    url = make_url(fresh_postgres_url)
    with TCPProxy((url.host or "127.0.0.1", url.port or 5432)) as proxy:
        engine = make_engine(url.set(host="127.0.0.1", port=proxy.port).render_as_string(False))
        db = session_factory(engine)
        ids = _dispatched(db, 3)
        cfg = replace(CFG, lease=timedelta(seconds=30))
        mailer = _BlipAfterAccept(SMTPMailer(sink.url, timeout=10), proxy, 1.5)
        clock = lambda: datetime.now(UTC)  # noqa: E731
        outs = send_deliveries(db, ids, mailer=mailer, cfg=cfg, clock=clock)
        mailer.close()
        assert mailer.blips == 1 and proxy.cuts == 1
        assert [o.status for o in outs] == ["sent"] * 3, outs
        assert _statuses(db) == ["sent"] * 3
        with db() as s:
            later = clock() + timedelta(minutes=5)
            assert deliveries.to_hand_out(s, now=later, stale_after=cfg.stale_after) == []
        engine.dispose()
    copies = copies_by_message_id(r.data for r in sink.messages)
    assert len(copies) == 3 and max(copies.values()) == 1, copies


@pytest.mark.redis
def test_redis_down_degrades_the_shared_bucket_to_a_local_one(
    tmp_path: Path, sink: SMTPSink, caplog: pytest.LogCaptureFixture
) -> None:
    """The shared bucket's Redis stops: sends go on, paced by a per-process bucket, with one log
    line for the outage (not one per send); when Redis is back the bucket is shared again."""
    with PrivateRedis(tmp_path) as redis_server:
        bucket = RedisTokenBucket(redis_server.url, 50.0, retry_after=0.3)
        mailer = SMTPMailer(sink.url, limiter=bucket, timeout=10)
        mailer.send(_msg(1))
        assert not bucket.degraded
        redis_server.stop()
        with caplog.at_level(logging.WARNING, logger="paperalerts.edges.ratelimit"):
            for i in range(2, 7):
                mailer.send(_msg(i))
                time.sleep(0.1)
            assert bucket.degraded
            down = [r for r in caplog.records if "unreachable" in r.getMessage()]
            assert len(down) == 1 and "pacing this process alone" in down[0].getMessage()
            redis_server.start()
            time.sleep(0.4)
            mailer.send(_msg(7))
            assert not bucket.degraded
            assert any("reachable again" in r.getMessage() for r in caplog.records)
        mailer.close()
        bucket.close()
    assert len(sink.messages) == 7


def _msg(n: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "alerts@example.org"
    msg["To"] = f"r{n}@example.org"
    msg["Subject"] = f"n{n}"
    msg["Message-ID"] = f"<m{n}@example.org>"
    msg.set_content("x")
    return msg


def test_a_lease_shorter_than_one_smtp_exchange_is_refused_at_start(tmp_path: Path) -> None:
    """LEASE 30 s with a 10 s SMTP timeout over STARTTLS and AUTH (9 steps: 90 s) is refused by
    `paperalerts worker` before it starts, naming both settings; the defaults pass, and so does
    the file mailer (no SMTP exchange)."""
    from paperalerts.edges.mailer import check_lease

    url = "smtp://u:p@relay.example.org:587?starttls=true"
    with pytest.raises(ConfigError, match=r"DELIVERY_LEASE_SECONDS=30 .*\(90s"):
        check_lease(Settings(smtp_url=url, delivery_lease_seconds=30, smtp_timeout=10))
    check_lease(Settings(smtp_url=url))
    check_lease(Settings(smtp_url="", delivery_lease_seconds=1))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERALERTS_")}
    env.update(
        PAPERALERTS_SMTP_URL=url,
        PAPERALERTS_DELIVERY_LEASE_SECONDS="30",
        PAPERALERTS_DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}",
    )
    for cmd in (["worker"], ["run"]):
        done = subprocess.run(
            [sys.executable, "-m", "paperalerts", *cmd], env=env, cwd=tmp_path,
            capture_output=True, text=True, timeout=60,
        )
        assert done.returncode != 0
        said = done.stdout + done.stderr
        assert "PAPERALERTS_DELIVERY_LEASE_SECONDS=30" in said and "SMTP_TIMEOUT" in said, said
        assert not (tmp_path / "x.db").exists()  # refused before anything started

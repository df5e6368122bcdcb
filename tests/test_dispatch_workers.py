"""The send-hour race with a real Celery worker (issue 21 item 1): the day's scrape is stored but
its match task was lost, and the send-hour dispatch runs on the worker first. Nobody is moved to
tomorrow; when a match task runs, it wakes dispatch, and every digest of the day arrives at the
SMTP sink, once per Message-ID. PostgreSQL, Redis broker, aiosmtpd."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import select, update

from conftest import REDIS_SERVER, fixture_file, require_redis
from paperalerts.edges.config import Settings
from paperalerts.edges.db import make_engine, session_factory, upgrade
from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.faces.tasks import make_celery
from smtp_sink import SMTPSink
from test_delivery_faults import DAYS, Factory, populate, wait_for, wall

pytestmark = pytest.mark.slow
BROKER = f"{REDIS_SERVER}/12"


def test_lost_match_task_at_the_send_hour_still_sends_that_days_digests(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    """Dispatch on a worker while the day's events are unmatched (their match task lost): no
    delivery, every `next_digest_at` kept; a match task on the worker then matches, wakes
    dispatch, and each subscriber's digest for today arrives once."""
    require_redis()
    fixture_file(f"hf_api_daily_papers/hf_api_daily_papers_{DAYS[0]}.json")
    r = redis.Redis.from_url(BROKER)
    r.flushdb()
    engine = make_engine(fresh_postgres_url)
    upgrade(engine)
    db: Factory = session_factory(engine)
    populate(db, 12)  # scraped, matched and due: now forget the matching
    with transaction(db) as s:
        s.execute(update(m.PaperEvent).values(matched_at=None, at=wall() - timedelta(minutes=5)))
        s.execute(m.Match.__table__.delete())
        s.execute(update(m.Subscriber).values(next_digest_at=wall() - timedelta(seconds=1)))
    with db() as s:
        due = dict(s.execute(select(m.Subscriber.id, m.Subscriber.next_digest_at)).all())
    sink = SMTPSink().start()
    env = {**os.environ, "PAPERALERTS_DATABASE_URL": fresh_postgres_url,
           "PAPERALERTS_BROKER_URL": BROKER, "PAPERALERTS_SMTP_URL": sink.url,
           "PAPERALERTS_SECRET_KEY": "race-secret-" + "x" * 20, "PAPERALERTS_SMTP_RATE": "0",
           "PAPERALERTS_MAIL_FROM": "paperalerts <alerts@example.org>"}  # fmt: skip
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "paperalerts.faces.tasks", "worker", "-Q",
         "match,mail", "-c", "2", "-l", "info", "-n", "race@%h", "--without-gossip",
         "--without-mingle", "--without-heartbeat", "-P", "prefork"],
        env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    client = make_celery(Settings(database_url=fresh_postgres_url, broker_url=BROKER,
                                  secret_key=env["PAPERALERTS_SECRET_KEY"]))  # fmt: skip
    try:
        wait_for(lambda: b" ready." in log.read_bytes(), 90, "the worker")
        client.send_task("paperalerts.dispatch")
        wait_for(lambda: b"paperalerts.dispatch[" in log.read_bytes()
                 and b"succeeded" in log.read_bytes(), 60, "the send-hour dispatch")  # fmt: skip
        time.sleep(1.0)
        with db() as s:
            assert s.scalar(select(m.Delivery.id)) is None
            kept = dict(s.execute(select(m.Subscriber.id, m.Subscriber.next_digest_at)).all())
        assert kept == due  # held for matching, not moved to tomorrow
        client.send_task("paperalerts.match")
        wait_for(lambda: len(sink.messages) >= 12, 120, "12 digests at the sink")
        time.sleep(2.0)  # a repeat would arrive by now
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(60)
        sink.stop()
        client.close()
        engine.dispose()
        r.flushdb()
        r.close()
    ids = Counter(str(x.message["Message-ID"]) for x in sink.messages)
    assert len(ids) == 12 and set(ids.values()) == {1}
    with db() as s:
        keys = set(s.scalars(select(m.Delivery.period_key)))
        left = s.scalar(select(m.Match.id).where(m.Match.delivery_id.is_(None)))
    assert keys == {d.date().isoformat() for d in due.values()} and left is None  # UTC readers

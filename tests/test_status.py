"""`paperalerts status`, queue depths on the real brokers, and /healthz and /metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from kombu import Connection
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.edges.broker import prune_consumed, queue_depths
from paperalerts.edges.config import Settings
from paperalerts.edges.db import make_engine, session_factory, upgrade
from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.edges.db.health_repo import record_heartbeat


def populate(factory: sessionmaker[Session]) -> dict[str, int]:
    """Two sources (one failing), a subscriber, deliveries in every state, a tick 10 min ago
    (all relative to the real clock now, which `status` reads)."""
    now = datetime.now(UTC).replace(microsecond=0)
    with transaction(factory) as s:
        s.add(
            m.Source(
                name="good",
                kind="hf-api",
                url="https://example.org/a",
                health="ok",
                last_success_at=now - timedelta(minutes=5),
                last_entry_count=9,
            )
        )
        s.add(m.Source(name="broken", kind="feed", url="https://example.org/b", health="failing",
                       consecutive_failures=3, last_error="HTTP 503 from example.org",
                       last_success_at=now - timedelta(hours=3),
                       failing_since=now - timedelta(hours=2)))  # fmt: skip
        sub = m.Subscriber(email="ann@example.org", status="active")
        s.add(sub)
        s.flush()
        rows = {
            "sent": m.Delivery(subscriber_id=sub.id, kind="digest", period_key="d1",
                               status="sent", sent_at=now - timedelta(hours=1),
                               created_at=now - timedelta(hours=1)),
            "lost": m.Delivery(subscriber_id=sub.id, kind="digest", period_key="d2",
                               status="queued", created_at=now - timedelta(minutes=10)),
            "dead": m.Delivery(subscriber_id=sub.id, kind="alert", period_key="a1",
                               status="sending", attempts=1, created_at=now - timedelta(minutes=8),
                               lease_until=now - timedelta(minutes=2), last_error="timeout"),
            "fresh": m.Delivery(subscriber_id=sub.id, kind="alert", period_key="a2",
                                status="queued", created_at=now),
            "failed": m.Delivery(subscriber_id=sub.id, kind="alert", period_key="a3",
                                 status="failed", created_at=now - timedelta(hours=3)),
        }  # fmt: skip
        s.add_all(rows.values())
        s.flush()
        ids = {k: v.id for k, v in rows.items()}
    record_heartbeat(factory, now - timedelta(minutes=10))
    return ids


@pytest.fixture
def populated(sqlite_url: str) -> tuple[str, dict[str, int]]:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    ids = populate(session_factory(engine))
    engine.dispose()
    return sqlite_url, ids


def status(db_url: str, *args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERALERTS_")}
    env.update(PAPERALERTS_DATABASE_URL=db_url, COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "paperalerts", "status", *args], env=env,
                          cwd=tmp, capture_output=True, text=True, timeout=60)  # fmt: skip


def test_status_json_reports_sources_counts_stuck_and_incidents(
    populated: tuple[str, dict[str, int]], tmp_path: Path
) -> None:
    """--json: each source's health, the 24 h counts, the stuck deliveries (lost wake-up and
    dead worker, not the fresh one), open incidents (failing source, stale tick), queue depths
    of the embedded broker."""
    url, ids = populated
    done = status(url, "--json", tmp=tmp_path)
    assert done.returncode == 1, done.stderr  # attention needed
    report = json.loads(done.stdout)
    by_name = {s["name"]: s for s in report["sources"]}
    assert by_name["broken"]["health"] == "failing"
    assert by_name["broken"]["consecutive_failures"] == 3
    assert by_name["good"]["last_entry_count"] == 9
    assert report["last_24h"] == {"fetched": 0, "new": 0, "matched": 0, "queued": 3, "sent": 1,
                                  "failed": 1}  # fmt: skip
    assert sorted(d["id"] for d in report["stuck_deliveries"]) == sorted([ids["lost"], ids["dead"]])
    assert [i["key"] for i in report["incidents"]] == ["scheduler", "source:broken"]
    assert 590 <= report["last_tick_age_seconds"] < 700
    assert report["queues"] == {
        "broker": "embedded",
        "depths": {"tick": 0, "scrape": 0, "match": 0, "mail": 0},
        "error": None,
    }
    assert report["ok"] is False


def test_status_for_people_names_what_needs_attention(
    populated: tuple[str, dict[str, int]], tmp_path: Path
) -> None:
    """The human form lists the sources, the stuck deliveries and the incidents in words."""
    url, _ids = populated
    done = status(url, tmp=tmp_path)
    assert done.returncode == 1, done.stderr
    out = done.stdout
    assert "attention needed" in out
    assert "fetched 0 -> new 0 -> matched 0 -> queued 3 -> sent 1 -> failed 1" in out
    assert "broken" in out and "failing" in out and "HTTP 503 from example.org" in out
    assert "Stuck deliveries" in out and "timeout" in out
    assert "incident Source broken has failed 3 scrapes in a row" in out
    assert "The scheduler has not run for 10 minutes" in out


def test_status_counts_leases_exits_nonzero_on_attention_and_shows_whole_errors(
    tmp_path: Path,
) -> None:
    """Deliveries held under a running lease (a killed worker's wait out the lease) and under
    an expired one are counted in both forms; `status` exits 1 when attention is needed and 0
    when all is well; a source's last error is shown whole, its cause at the end included;
    `--max-tick-age` checks only the scheduler."""
    url = f"sqlite:///{tmp_path / 'pa.db'}"
    engine = make_engine(url)
    upgrade(engine)
    factory = session_factory(engine)
    now = datetime.now(UTC)
    record_heartbeat(factory, now)
    with transaction(factory) as s:
        sub = m.Subscriber(email="ann@example.org", status="active")
        s.add(sub)
        s.flush()
        for i, lease in enumerate((4, 4, -1)):  # minutes left on the lease
            s.add(m.Delivery(subscriber_id=sub.id, kind="alert", period_key=f"p{i}",
                             status="sending", attempts=1, created_at=now,
                             lease_until=now + timedelta(minutes=lease)))  # fmt: skip
    healthy = status(url, "--json", tmp=tmp_path)
    assert healthy.returncode == 1  # the expired lease is stuck: attention needed
    assert json.loads(healthy.stdout)["deliveries_sending"] == {"in_flight": 2, "lease_expired": 1}
    text = status(url, tmp=tmp_path).stdout
    assert "2 in flight (lease running), 1 with an expired lease" in text
    cause = "ConnectError: [Errno -2] Name or service not known (while fetching the listing)"
    with transaction(factory) as s:
        s.execute(update(m.Delivery).values(status="sent", lease_until=None))
        s.add(m.Source(name="far", kind="feed", url="https://example.org/f", health="degraded",
                       consecutive_failures=1, last_success_at=now,
                       last_error=f"fetching https://example.org/f: {cause}"))  # fmt: skip
    done = status(url, tmp=tmp_path)
    assert done.returncode == 0, done.stdout  # a degraded source alone is no incident yet
    assert cause in done.stdout and "0 in flight" in done.stdout
    record_heartbeat(factory, now - timedelta(hours=1))
    assert status(url, tmp=tmp_path).returncode == 1  # the scheduler stalled
    assert status(url, "--max-tick-age", "7200", tmp=tmp_path).returncode == 0
    assert status(url, "--max-tick-age", "60", tmp=tmp_path).returncode == 1
    engine.dispose()


def test_status_refuses_an_uninitialised_database(tmp_path: Path) -> None:
    """status on a database that was never initialised says so in one line."""
    done = status(f"sqlite:///{tmp_path / 'none.db'}", tmp=tmp_path)
    assert done.returncode == 1 and "paperalerts init" in done.stderr


def test_embedded_broker_depths_count_waiting_messages_and_prune_consumed(tmp_path: Path) -> None:
    """The embedded broker: depths count waiting messages per queue; a consumed message stops
    counting and `prune_consumed` deletes it (kombu keeps it otherwise)."""
    url = f"sqla+sqlite:///{tmp_path / 'broker.db'}"
    assert queue_depths(url).depths == {"tick": 0, "scrape": 0, "match": 0, "mail": 0}  # never used
    with Connection(url) as conn:
        for name, n in (("mail", 3), ("scrape", 1)):
            q = conn.SimpleQueue(name)
            for i in range(n):
                q.put({"i": i})
            q.close()
        assert queue_depths(url).depths == {"tick": 0, "scrape": 1, "match": 0, "mail": 3}
        q = conn.SimpleQueue("mail")
        q.get(timeout=5).ack()
        q.close()
    assert queue_depths(url).depths["mail"] == 2
    assert prune_consumed(url) == 1
    assert prune_consumed(url) == 0
    assert queue_depths(url).depths["mail"] == 2


@pytest.mark.redis
def test_redis_depths_are_the_queue_lists_lengths(redis_url: str) -> None:
    """Redis: LLEN of each queue's list, prioritised sub-lists included."""
    with Connection(redis_url) as conn:
        q = conn.SimpleQueue("match")
        q.put({"a": 1})
        q.put({"a": 2})
        q.put({"a": 3}, priority=6)
        q.close()
    got = queue_depths(redis_url)
    assert got.kind == "redis" and got.error is None
    assert got.depths == {"tick": 0, "scrape": 0, "match": 3, "mail": 0}


def test_an_unreachable_broker_reports_why_instead_of_failing() -> None:
    """A broker that does not answer gives unknown depths and the error, never an exception;
    an unknown kind of broker gives unknown depths."""
    got = queue_depths("redis://127.0.0.1:1/0")
    assert got.depths == {"tick": None, "scrape": None, "match": None, "mail": None}
    assert got.error and "Connection" in got.error
    assert queue_depths("amqp://guest@localhost//").depths["mail"] is None


# --- /healthz and /metrics -----------------------------------------------------------------


def web(db: Any, url: str) -> FastAPI:
    from paperalerts.faces.web import create_app

    return create_app(Settings(database_url=url, secret_key="k" * 32), session_factory=db)


def test_healthz_is_ok_with_a_fresh_tick_and_degraded_with_incidents(sqlite_url: str) -> None:
    """/healthz: 200 and "ok" with a recent tick; 200 and "degraded" naming the incidents when
    a source fails two intervals in a row; the database is reported either way."""
    engine = make_engine(sqlite_url)
    upgrade(engine)
    db = session_factory(engine)
    record_heartbeat(db, datetime.now(UTC))
    with TestClient(web(db, sqlite_url)) as client:
        r = client.get("/healthz")
        assert r.status_code == 200
        assert r.json()["status"] == "ok" and r.json()["database"] == "ok"
        assert r.json()["last_tick_age_seconds"] < 60
        populate(db)
        body = client.get("/healthz").json()
    assert body["status"] == "degraded"
    assert body["incidents"] == ["scheduler", "source:broken"]


def test_healthz_answers_503_when_the_database_does_not(tmp_path: Path) -> None:
    """/healthz: 503 when the database cannot be read (here: never initialised)."""
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    db = session_factory(make_engine(url))
    with TestClient(web(db, url)) as client:
        r = client.get("/healthz")
    assert r.status_code == 503 and r.json()["status"] == "error"


def test_metrics_expose_the_database_in_prometheus_format(
    populated: tuple[str, dict[str, int]],
) -> None:
    """/metrics: deliveries by status, stuck ones, sources by health, the tick's age, the 24 h
    counts and open incidents, parsed back with prometheus-client's own parser."""
    from prometheus_client.parser import text_string_to_metric_families

    url, _ = populated
    db = session_factory(make_engine(url))
    with TestClient(web(db, url)) as client:
        r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(r.text)
        for s in fam.samples
    }
    assert samples[("paperalerts_deliveries", (("status", "queued"),))] == 2
    assert samples[("paperalerts_deliveries", (("status", "sending"),))] == 1
    assert samples[("paperalerts_deliveries", (("status", "sent"),))] == 1
    assert samples[("paperalerts_deliveries_stuck", ())] == 2
    assert samples[("paperalerts_sources", (("health", "failing"),))] == 1
    assert samples[("paperalerts_sources", (("health", "ok"),))] == 1
    assert samples[("paperalerts_source_consecutive_failures", (("source", "broken"),))] == 3
    assert 590 <= samples[("paperalerts_last_tick_age_seconds", ())] < 700
    assert samples[("paperalerts_last_24h", (("stage", "failed"),))] == 1
    assert samples[("paperalerts_incidents_open", ())] == 2


def never_worked(factory: sessionmaker[Session]) -> None:
    """The six default sources, each scraped once and failed, none ever successful (a fresh
    install without internet), and a scheduler that ran a minute ago."""
    from paperalerts.core.defaults import DEFAULT_SOURCES

    now = datetime.now(UTC)
    with transaction(factory) as s:
        for d in DEFAULT_SOURCES:
            s.add(m.Source(name=d.name, kind=d.kind, url=d.url, health="degraded",
                           consecutive_failures=1, last_run_at=now, failing_since=now,
                           last_error="fetch: connection refused"))  # fmt: skip
    record_heartbeat(factory, now - timedelta(minutes=1))


def test_sources_that_never_worked_are_failing_in_status_and_healthz(
    sqlite_url: str, tmp_path: Path
) -> None:
    """All default sources failed once and never succeeded: `status` says "attention needed"
    and shows them failing, /healthz is "degraded" naming each, not "ok"."""
    from paperalerts.core.defaults import DEFAULT_SOURCES

    engine = make_engine(sqlite_url)
    upgrade(engine)
    db = session_factory(engine)
    never_worked(db)
    done = status(sqlite_url, tmp=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "attention needed" in done.stdout and " ok" not in done.stdout.split("\n")[0]
    assert done.stdout.count("has never worked (1 failed scrape)") == len(DEFAULT_SOURCES)
    report = json.loads(status(sqlite_url, "--json", tmp=tmp_path).stdout)
    assert {s["verdict"] for s in report["sources"]} == {"failing"}
    with TestClient(web(db, sqlite_url)) as client:
        body = client.get("/healthz").json()
    assert body["status"] == "degraded"
    assert sorted(body["incidents"]) == sorted(f"source:{d.name}" for d in DEFAULT_SOURCES)

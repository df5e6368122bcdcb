"""Celery time limits on the scrape and send tasks: set, derived from the settings that bound the
work (so a legitimate fetch or send batch is never cut), and a scrape that runs out of time is
recorded as a failure of its source instead of leaving it "ok"."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.edges.config import Settings
from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.faces import tasks
from paperalerts.faces.step_config import task_limits

NOW = datetime(2026, 8, 1, 6, tzinfo=UTC)


def test_scrape_and_send_tasks_have_soft_and_hard_limits_above_their_work() -> None:
    """The app carries soft and hard limits for scrape_source, send_deliveries and
    send_delivery; the scrape's soft limit exceeds the fetch deadline, the send batch's budget is
    the lease and its soft limit leaves room for the message in flight."""
    settings = Settings(fetch_deadline=45, delivery_lease_seconds=200, smtp_timeout=20)
    app = tasks.make_celery(settings)
    ann = app.conf.task_annotations
    scrape = ann["paperalerts.scrape_source"]
    assert 45 < scrape["soft_time_limit"] < scrape["time_limit"]
    for name in ("paperalerts.send_deliveries", "paperalerts.send_delivery"):
        send = ann[name]
        assert 200 + 4 * 20 <= send["soft_time_limit"] < send["time_limit"]
    assert task_limits(settings).send_batch_budget == 200
    app.close()


def test_a_scrape_out_of_time_marks_its_source_failed(
    db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the soft limit interrupts a scrape (simulated: Celery raises SoftTimeLimitExceeded
    inside the task), the task records a failed snapshot with the reason and the source's health
    changes; the worker goes on."""
    with transaction(db) as s:
        src = m.Source(name="slow", kind="feed", url="https://example.org/feed", health="ok",
                       last_success_at=NOW)
        s.add(src)
        s.flush()
        sid = src.id

    def out_of_time(*args: Any, **kwargs: Any) -> None:
        raise SoftTimeLimitExceeded()

    settings = Settings(fetch_deadline=30)
    monkeypatch.setattr(tasks, "scrape_source", out_of_time)
    monkeypatch.setattr(tasks, "_edges", tasks._Edges(
        settings, db, None, None, None))  # type: ignore[arg-type]  # only settings and factory
    assert tasks.scrape.run(sid) == "failed"
    with db() as s:
        src = s.get_one(m.Source, sid)
        assert src.health == "degraded" and src.last_error is not None
        assert src.last_error.startswith("time limit: the scrape took longer than 150 s")
        assert s.scalars(select(m.Snapshot.status)).one() == "failed"

"""What the admin sees of operator health: the report the dashboard reads (`collect_report`, as
`status` does) on SQLite and PostgreSQL, and the sources page for a source that never worked."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.edges.db.health_repo import record_heartbeat
from paperalerts.pipeline.health import HealthConfig, collect_report

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def add_source(db: Any, failures: int, name: str) -> None:
    """A source that worked a day before T0 and has failed `failures` times since."""
    with transaction(db) as s:
        s.add(m.Source(name=name, kind="hf-api", url="https://example.org/api",
                       consecutive_failures=failures, health="degraded" if failures else "ok",
                       last_error="HTTP 503" if failures else None,
                       last_success_at=T0 - timedelta(days=1),
                       failing_since=T0 if failures else None))  # fmt: skip


def test_the_dashboard_report_holds_incidents_last_run_and_stuck_deliveries(db: Any) -> None:
    """The report the admin dashboard reads gives the open incidents (the scheduler first), the
    scheduler's last run, the stuck deliveries and the sources by verdict."""
    add_source(db, failures=2, name="broken")
    with transaction(db) as s:
        s.add(m.Source(name="never", kind="feed", url="https://example.org/f",
                       consecutive_failures=1, health="failing", last_run_at=T0))
        s.add(m.Source(name="new", kind="feed", url="https://example.org/n"))
        sub = m.Subscriber(email="ann@example.org", status="active")
        s.add(sub)
        s.flush()
        s.add(m.Delivery(subscriber_id=sub.id, kind="digest", period_key="d1", status="queued",
                         created_at=T0 - timedelta(minutes=30)))
    record_heartbeat(db, T0 - timedelta(minutes=10))
    cfg = HealthConfig(admin_emails=(), mail_from="a@example.org", mail_domain="example.org",
                       base_url="http://x")
    report = collect_report(db, cfg, T0)
    assert [i.key for i in report.incidents] == ["scheduler", "source:broken", "source:never"]
    assert report.last_heartbeat == T0 - timedelta(minutes=10)
    assert report.heartbeat_age == timedelta(minutes=10)
    assert [d.subscriber for d in report.stuck] == ["ann@example.org"]
    assert report.verdict_counts() == {"ok": 0, "degraded": 1, "failing": 1, "unchecked": 1}
    assert not report.ok


def test_the_admin_shows_a_source_that_never_worked_as_failing(factory: Any) -> None:
    """One failed first scrape (a page that does not parse): the admin's sources page shows the
    source as failing, not degraded."""
    from paperalerts.pipeline.scrape import scrape_source
    from web_support import WebEnv, make_admin

    with transaction(factory) as s:
        s.add(m.Source(name="never-worked", kind="feed", url="https://example.org/feed"))
    with factory() as s:
        sid = s.query(m.Source.id).scalar()
    scrape_source(factory, sid, fetcher=None, now=T0, body=b"<html>502 Bad Gateway</html>")
    make_admin(factory)
    env = WebEnv.start(factory)
    assert env.login().status_code == 303
    page = env.client.get("/admin/sources").text
    row = re.search(r"<tr[^>]*>(?:(?!</tr>).)*never-worked(?:(?!</tr>).)*</tr>", page, re.S)
    assert row is not None and "failing" in row.group(0) and "degraded" not in row.group(0)

"""The admin's operator views and actions in Chromium against the app served by uvicorn: the
dashboard's health (incidents, last tick, stuck deliveries), one subscriber's schedule and "send
digest now" through the real delivery pipeline and SMTP sink, and deleting a source.

Screenshots go to artifacts/screenshots/ (not committed; docs/ holds chosen copies)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from conftest import REPO
from paperalerts.core.schedule import next_digest_at, zone
from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.edges.db.health_repo import record_heartbeat
from paperalerts.edges.mailer import SMTPMailer
from paperalerts.faces.web import create_app
from paperalerts.pipeline import match_new_events
from smtp_sink import SMTPSink
from web_support import (
    LiveServer,
    add_subscriber,
    admin_login,
    launch_chromium,
    make_admin,
    real_papers,
    seed_papers,
    settings_for,
    wait_for,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SHOTS = REPO / "artifacts" / "screenshots"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch_chromium() as b:
        yield b


@pytest.fixture
def server(factory: sessionmaker[Session], sink: SMTPSink) -> Iterator[LiveServer]:
    def app(url: str) -> Any:
        return create_app(settings_for(url), mailer=SMTPMailer(sink.url, timeout=10),
                          session_factory=factory)

    with LiveServer(app) as live:
        yield live


@pytest.fixture
def page(browser: Any, server: LiveServer, factory: sessionmaker[Session]) -> Iterator[Any]:
    make_admin(factory)
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    p = context.new_page()
    p.on("dialog", lambda d: d.accept())  # the "are you sure?" of destructive buttons
    admin_login(p, server.url)
    yield p
    context.close()


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _sources_with_history(factory: sessionmaker[Session], now: datetime) -> dict[str, int]:
    """Two sources that both listed the fixture's papers, with a snapshot and events each."""
    papers = real_papers()
    seed_papers(factory, papers, now)
    ids: dict[str, int] = {}
    with transaction(factory) as s:
        for name in ("hf-daily", "arxiv-cs.LG"):
            src = m.Source(name=name, kind="hf-api", url=f"https://example.org/{name}",
                           last_success_at=now, last_entry_count=len(papers))
            s.add(src)
            s.flush()
            snap = m.Snapshot(source_id=src.id, fetched_at=now, status="ok",
                              entry_ids=[p.id for p in papers], entry_count=len(papers))
            s.add(snap)
            s.flush()
            for p in papers:
                s.add(m.PaperSource(paper_id=p.id, source_id=src.id, first_seen_at=now,
                                    last_seen_at=now))
                s.add(m.PaperEvent(paper_id=p.id, source_id=src.id, snapshot_id=snap.id,
                                   kind="new", at=now))
            ids[name] = src.id
    return ids


def test_dashboard_shows_incidents_last_tick_and_stuck_deliveries(
    page: Any, server: LiveServer, factory: sessionmaker[Session]
) -> None:
    """With two sources failing, a tick 10 minutes old and a digest queued an hour ago, the
    dashboard lists three open incidents (the scheduler first), its last run with its age, and the
    stuck delivery with its subscriber."""
    now = datetime.now(UTC)
    sid = add_subscriber(factory, "waiting@example.org")
    with transaction(factory) as s:
        for name in ("hf-daily", "arxiv-cs.LG"):
            s.add(m.Source(name=name, kind="hf-api", url=f"https://example.org/{name}",
                           health="failing", consecutive_failures=3, failing_since=now,
                           last_error="HTTP 503"))
        s.add(m.Source(name="hf-trending", kind="hf-papers", url="https://example.org/t",
                       last_success_at=now))
        s.add(m.Delivery(subscriber_id=sid, kind="digest", period_key="2026-01-01",
                         status="queued", created_at=now - timedelta(hours=1)))
    record_heartbeat(factory, now - timedelta(minutes=10))
    page.goto(server.url + "/admin")
    keys = page.eval_on_selector_all(".incident", "els => els.map(e => e.dataset.incident)")
    assert keys == ["scheduler", "source:arxiv-cs.LG", "source:hf-daily"]
    assert "has not run for 10 minutes" in page.inner_text("[data-incident=scheduler]")
    assert "min ago" in page.inner_text("#last-tick")
    assert page.inner_text("#stuck-count") == "1"
    assert "waiting@example.org" in page.inner_text("#stuck")
    assert not page.is_visible("#health-ok")
    shot(page, "20-admin-dashboard")


def test_admin_changes_a_schedule_and_sends_a_digest_now(
    page: Any, server: LiveServer, sink: SMTPSink, factory: sessionmaker[Session]
) -> None:
    """On a subscriber's page the admin moves them to weekly on Tuesday 07:00 Berlin time (the
    page then says so and the next digest is rescheduled), then sends their waiting papers now:
    one real digest reaches the SMTP sink with those papers, they are attached to a sent
    delivery, and nothing is left waiting."""
    now = datetime.now(UTC)
    papers = real_papers()
    seed_papers(factory, papers, now)
    sid = add_subscriber(factory, "reader@example.org", rules=("diffusion",))
    with transaction(factory) as s:
        for p in papers:
            s.add(m.PaperEvent(paper_id=p.id, kind="new", at=now))
    match_new_events(factory, now=now)
    with factory() as s:
        waiting = int(s.scalar(select(func.count()).select_from(m.Match)) or 0)
    assert waiting >= 2

    page.goto(f"{server.url}/admin/subscribers/{sid}")
    assert page.inner_text("#waiting") == str(waiting)
    page.select_option("#s-frequency", "weekly")
    page.select_option("#s-weekday", "1")
    page.select_option("#s-hour", "7")
    page.select_option("#s-timezone", "Europe/Berlin")
    page.click("#schedule-form button[type=submit]")
    page.wait_for_selector("text=Schedule saved.")
    assert page.url == f"{server.url}/admin/subscribers/{sid}"
    expected = next_digest_at("weekly", 7, 1, "Europe/Berlin", now)
    assert expected.astimezone(zone("Europe/Berlin")).strftime("%a %H:%M") == "Tue 07:00"
    assert "Next digest: Tue" in page.inner_text("#next-digest")
    assert "07:00" in page.inner_text("#next-digest")
    with factory() as s:
        sub = s.get_one(m.Subscriber, sid)
        assert (sub.frequency, sub.weekday, sub.send_hour) == ("weekly", 1, 7)
        assert sub.next_digest_at == expected

    page.click("#send-now button[type=submit]")
    page.wait_for_selector(f"text=with {waiting} papers")
    assert page.inner_text("[role=status]").startswith("Sent delivery")
    wait_for(lambda: len(sink.messages) == 1)
    body = sink.messages[0].message.get_body(preferencelist=("plain",)).get_content()
    for p in papers:
        if "diffusion" in p.title.lower():
            assert p.title.split(":")[0] in body
    assert page.inner_text("#waiting") == "0"
    shot(page, "21-admin-subscriber")
    with factory() as s:
        d = s.scalars(select(m.Delivery)).one()
        assert (d.status, d.kind, d.period_key[:4]) == ("sent", "digest", "now-")
        assert set(s.scalars(select(m.Match.delivery_id))) == {d.id}
        assert s.get_one(m.Subscriber, sid).next_digest_at == expected  # schedule kept

    page.click("#send-now button[type=submit]")
    page.wait_for_selector("text=Nothing to send")
    assert len(sink.messages) == 1


def test_admin_deletes_a_source_keeping_papers_and_history(
    page: Any, server: LiveServer, factory: sessionmaker[Session]
) -> None:
    """Deleting a source (after the confirmation) removes it, its snapshots and its
    paper_source rows; every paper stays, the other source keeps its rows, and the source's
    paper events stay with no source or snapshot. The audit log records the deletion."""
    now = datetime.now(UTC)
    ids = _sources_with_history(factory, now)
    with factory() as s:
        papers = int(s.scalar(select(func.count()).select_from(m.Paper)) or 0)
    page.goto(f"{server.url}/admin/sources/{ids['hf-daily']}")
    page.click("#delete-source button[type=submit]")
    page.wait_for_selector("text=Source deleted.")
    assert page.url == server.url + "/admin/sources?done=deleted"
    assert "hf-daily" not in page.inner_text("table")
    with factory() as s:
        assert s.get(m.Source, ids["hf-daily"]) is None
        assert int(s.scalar(select(func.count()).select_from(m.Paper)) or 0) == papers
        assert set(s.scalars(select(m.Snapshot.source_id))) == {ids["arxiv-cs.LG"]}
        assert set(s.scalars(select(m.PaperSource.source_id))) == {ids["arxiv-cs.LG"]}
        orphans = list(s.scalars(select(m.PaperEvent).where(m.PaperEvent.source_id.is_(None))))
        assert len(orphans) == papers and all(e.snapshot_id is None for e in orphans)
    page.goto(f"{server.url}/admin/audit?entity=source")
    assert "delete source" in page.inner_text("tr.audit-row >> nth=0")

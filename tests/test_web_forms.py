"""Forms and admin actions without a browser: the sign-up answer is the same for every address,
flash messages are for one page and cannot be forged, the timezone list, "send now" and
deleting a source on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.edges.db import models as m
from paperalerts.edges.db import repo
from paperalerts.edges.db.engine import transaction
from paperalerts.faces.step_config import delivery_config
from paperalerts.faces.web import flash, zones
from paperalerts.pipeline import match_new_events
from paperalerts.pipeline.deliver_now import NotSendable, dispatch_now, send_now
from smtp_sink import SMTPSink
from tamper_support import tamper
from test_web_admin_ops_browser import _sources_with_history
from web_support import WebEnv, add_subscriber, real_papers, seed_papers, settings_for, wait_for


def _signup(env: WebEnv, email: str, **extra: Any) -> Any:
    return env.post_form("/signup", "/signup", {
        "email": email, "rules": "diffusion", "frequency": "daily", "hour": "8", "weekday": "0",
        "timezone": "Europe/Berlin", **extra}, follow_redirects=False)


def test_signup_answer_is_identical_for_new_and_subscribed_addresses(
    factory: Any, sink: SMTPSink
) -> None:
    """A new address and an active one get byte-identical answers (the redirect and the page
    it leads to); the new one gets a confirmation, the active one an "already subscribed"
    email, and no more than one of those a day however often the form is sent."""
    add_subscriber(factory, "known@example.org", rules=("agents",))
    env = WebEnv.start(factory, sink.url, signup_limit_per_address=10)
    answers = [_signup(env, "fresh@example.org"), _signup(env, "known@example.org"),
               _signup(env, "known@example.org")]
    assert {(a.status_code, a.headers["location"], a.content) for a in answers} == {
        (303, "/signup/done", b"")}
    assert all("set-cookie" not in a.headers for a in answers)
    pages = {env.client.get(a.headers["location"]).content for a in answers}
    assert len(pages) == 1
    wait_for(lambda: len(sink.messages) == 2)
    subjects = sorted(str(x.message["Subject"]) for x in sink.messages)
    assert subjects == ["Confirm your paper alerts subscription",
                        "You are already subscribed to paper alerts"]
    with factory() as s:
        known = s.scalars(select(m.Subscriber).where(m.Subscriber.email == "known@example.org")
                          ).one()
        rules = list(s.scalars(select(m.Rule.query).where(m.Rule.subscriber_id == known.id)))
    assert known.status == "active" and rules == ["agents"]  # nothing changed by the form


def test_confirming_twice_does_not_welcome_again(factory: Any) -> None:
    """The first confirmation welcomes; a second click on the same link says it was already
    confirmed."""
    from paperalerts.core.tokens import make_token

    sid = add_subscriber(factory, "twice@example.org", status="pending")
    env = WebEnv.start(factory)
    url = f"/confirm/{make_token(env.settings.effective_secret_key(), 'confirm', sid, 1)}"
    first = env.post_form(url, url, {}, follow_redirects=False)
    second = env.post_form(url, url, {}, follow_redirects=False)
    assert first.headers["location"].endswith("?done=confirmed")
    assert second.headers["location"].endswith("?done=already-confirmed")
    assert "already confirmed" in env.client.get(second.headers["location"]).text


def test_flash_is_for_its_page_only_and_cannot_be_forged(factory: Any) -> None:
    """A failed save's flash shows on the page it redirected to, once; another page leaves it
    alone; a tampered cookie is ignored."""
    env = WebEnv.start(factory)
    r = _signup(env, "not an address")
    assert r.status_code == 303 and r.headers["location"] == "/signup"
    cookie = env.client.cookies.get(flash.COOKIE)
    assert cookie
    other = env.client.get("/admin/login")
    assert other.status_code == 200 and flash.COOKIE not in other.headers.get("set-cookie", "")
    shown = env.client.get("/signup")
    assert shown.status_code == 400 and 'class="error"' in shown.text
    assert 'value="not an address"' in shown.text
    again = env.client.get("/signup")  # consumed: a reload shows the form afresh
    assert again.status_code == 200 and 'class="error"' not in again.text
    env.client.cookies.set(flash.COOKIE, tamper(cookie))
    forged = env.client.get("/signup")
    assert forged.status_code == 200 and 'class="error"' not in forged.text


def test_timezone_list_falls_back_to_region_names_without_zone_tab() -> None:
    """Without a zone.tab the list is the region folders' zones: no aliases like US/Eastern,
    no Factory or localtime."""
    known = frozenset({"Europe/Berlin", "US/Eastern", "Factory", "localtime", "Asia/Tokyo"})
    assert zones.canonical_names("", known) == ["Asia/Tokyo", "Europe/Berlin"]
    tab = "# comment\nDE\t+5230+01322\tEurope/Berlin\nXX\t+0\tNowhere/Gone\n"
    assert zones.canonical_names(tab, known) == ["Europe/Berlin"]
    assert zones.label("America/Argentina/Buenos_Aires") == "Argentina / Buenos Aires"
    assert {"UTC", "Europe/Berlin", "America/New_York"} <= zones.offered()
    assert not {"Factory", "localtime", "US/Eastern"} & zones.offered()


def test_send_now_sends_waiting_papers_once_and_refuses_inactive(
    factory: sessionmaker[Session], sink: SMTPSink, mailer: Any
) -> None:
    """`send_now` puts every waiting match in one delivery and sends it through
    `send_delivery`; a second call finds nothing; a paused subscriber is refused and keeps
    their waiting papers."""
    now = datetime.now(UTC)
    seed_papers(factory, real_papers(), now)
    sid = add_subscriber(factory, "now@example.org", rules=("diffusion",))
    other = add_subscriber(factory, "paused@example.org", rules=("diffusion",))
    with transaction(factory) as s:
        for pid in s.scalars(select(m.Paper.id)):
            s.add(m.PaperEvent(paper_id=pid, kind="new", at=now))
    match_new_events(factory, now=now)
    with transaction(factory) as s:
        s.get_one(m.Subscriber, other).status = "paused"
    cfg = delivery_config(settings_for())
    result = send_now(factory, sid, mailer=mailer, cfg=cfg, now=now)
    assert result.outcome is not None and result.outcome.status == "sent"
    assert result.papers >= 2 and len(sink.messages) == 1
    assert send_now(factory, sid, mailer=mailer, cfg=cfg, now=now).delivery_id is None
    with pytest.raises(NotSendable, match="paused"):
        dispatch_now(factory, other, now=now)
    with factory() as s:
        waiting = s.scalar(select(func.count()).select_from(m.Match).where(
            m.Match.subscriber_id == other, m.Match.delivery_id.is_(None)))
    assert waiting == result.papers


def test_delete_source_keeps_papers_on_both_databases(db: sessionmaker[Session]) -> None:
    """`repo.delete_source` on SQLite and PostgreSQL: snapshots and paper_source rows of the
    source go, papers and events stay (events lose their source and snapshot), and an
    announced incident of the source is forgotten rather than reported as recovered."""
    now = datetime.now(UTC)
    ids = _sources_with_history(db, now)
    with transaction(db) as s:
        s.add(m.State(key="incident:source:hf-daily", value="{}"))
    with transaction(db) as s:
        counts = repo.delete_source(s, s.get_one(m.Source, ids["hf-daily"]), "test")
    with db() as s:
        papers = int(s.scalar(select(func.count()).select_from(m.Paper)) or 0)
        assert counts == {"snapshots": 1, "paper_sources": papers}
        assert s.get(m.State, "incident:source:hf-daily") is None
        assert set(s.scalars(select(m.Snapshot.source_id))) == {ids["arxiv-cs.LG"]}
        events = list(s.scalars(select(m.PaperEvent)))
        assert len(events) == 2 * papers
        assert sum(e.source_id is None for e in events) == papers
        log = s.scalars(select(m.AuditLog).where(m.AuditLog.entity == "source")).one()
        assert (log.action, log.before["name"], log.after) == ("delete", "hf-daily", None)

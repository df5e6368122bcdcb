"""Signing up again: what a returning address enters is applied at the confirm (and the confirm
page says so first); the sign-up does the same database work whatever the address; a bounced
address can come back. Real SMTP sink, SQLite and PostgreSQL, and Chromium for the pages."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.edges.mailer import SMTPMailer
from paperalerts.faces.web import create_app
from paperalerts.pipeline import subscriptions as subs
from smtp_sink import SMTPSink
from web_support import (
    LiveServer,
    WebEnv,
    add_subscriber,
    csrf_of,
    launch_chromium,
    settings_for,
    urls_in,
    wait_for,
)

Factory = sessionmaker[Session]
FORM = {"frequency": "weekly", "hour": "9", "weekday": "1", "timezone": "Europe/Berlin",
        "rules": "diffusion"}


def _returning(factory: Factory, email: str, status: str = "unsubscribed") -> tuple[int, int]:
    """A subscriber who had rule "graph", a daily 08:00 UTC digest and topic "Old", now in
    `status`; and a public topic "New" (its id returned)."""
    sid = add_subscriber(factory, email, status=status, rules=("graph",))
    with transaction(factory) as s:
        old = m.Topic(name="Old", query="old", normalized="old")
        new = m.Topic(name="New", query="new", normalized="new")
        s.add_all([old, new])
        s.flush()
        s.add(m.SubscriberTopic(subscriber_id=sid, topic_id=old.id))
        return sid, new.id


def _state(factory: Factory, sid: int) -> tuple[Any, ...]:
    with factory() as s:
        sub = s.get_one(m.Subscriber, sid)
        rules = list(s.scalars(select(m.Rule.query).where(m.Rule.subscriber_id == sid)))
        topics = sorted(s.scalars(select(m.Topic.name).join(m.SubscriberTopic).where(
            m.SubscriberTopic.subscriber_id == sid)))
        return (sub.status, sub.frequency, sub.send_hour, sub.weekday, sub.timezone, rules,
                topics, sub.bounce_score)


def _confirm_path(sink: SMTPSink, to: str) -> str:
    wait_for(lambda: any(to in r.rcpt_tos for r in sink.messages))
    msg = next(r for r in sink.messages if to in r.rcpt_tos).message
    url = next(u for u in urls_in(msg) if "/confirm/" in u)
    return "/confirm/" + url.split("/confirm/", 1)[1]


@pytest.mark.parametrize("status", ["unsubscribed", "bounced"])
def test_signing_up_again_applies_what_was_entered_at_the_confirm(
    db: Factory, sink: SMTPSink, status: str
) -> None:
    """An unsubscribed (or bounced) address signed up again with new rules, topics and schedule:
    nothing changes before the confirm; the confirm page lists what will be applied and that it
    replaces the old subscription; confirming applies it and reactivates (bounce score reset).
    The used link cannot reopen it after another unsubscribe (SQLite and PostgreSQL)."""
    sid, new_topic = _returning(db, "back@example.org", status)
    env = WebEnv.start(db, sink.url)
    r = env.post_form("/signup", "/signup", {**FORM, "email": "back@example.org",
                                              "topics": [str(new_topic)]})
    assert r.status_code == 200 and "Check your inbox" in r.text
    assert _state(db, sid)[:1] + _state(db, sid)[5:7] == (status, ["graph"], ["Old"])
    path = _confirm_path(sink, "back@example.org")
    page = env.client.get(path)
    assert page.status_code == 200
    assert "weekly digest on Tuesdays at 09:00 (Europe/Berlin)" in page.text
    assert re.search(r'<code class="confirm-rule">diffusion</code>', page.text)
    assert "Topics: New" in page.text and "replaces its earlier rules" in page.text
    done = env.post_form(path, path, {}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].endswith("?done=confirmed")
    assert _state(db, sid) == ("active", "weekly", 9, 1, "Europe/Berlin", ["diffusion"],
                               ["New"], 0)
    assert "Welcome!" in env.client.get(done.headers["location"]).text
    with transaction(db) as s:
        subs.unsubscribe(s, s.get_one(m.Subscriber, sid), s.get_one(m.Subscriber, sid)
                         .created_at, "subscriber")
    assert env.post_form(path, path, {}, follow_redirects=False).status_code == 400
    assert _state(db, sid)[0] == "unsubscribed"


def test_a_sign_up_in_someone_elses_name_changes_nothing_unless_they_confirm(
    factory: Factory, sink: SMTPSink
) -> None:
    """Anyone can type an address: a sign-up for an unsubscribed address leaves its rules and
    schedule alone, and each emailed link applies exactly the form it was sent for."""
    sid, _ = _returning(factory, "back@example.org")
    env = WebEnv.start(factory, sink.url)
    env.post_form("/signup", "/signup", {**FORM, "email": "back@example.org", "rules": "mine"})
    first = _confirm_path(sink, "back@example.org")
    env.post_form("/signup", "/signup", {**FORM, "email": "back@example.org",
                                          "rules": "someone else's", "frequency": "instant"})
    wait_for(lambda: len(sink.messages) == 2)
    assert _state(factory, sid)[:6] == ("unsubscribed", "daily", 8, 0, "UTC", ["graph"])
    env.post_form(first, first, {})
    assert _state(factory, sid)[:6] == ("active", "weekly", 9, 1, "Europe/Berlin", ["mine"])


def _statements_before_the_answer(factory: Factory, email: str) -> list[str]:
    """The SQL the sign-up handler runs before its answer is sent (the email goes after)."""
    app = create_app(settings_for(), session_factory=factory)
    answered = threading.Event()
    seen: list[str] = []

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        async def sending(message: Any) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                answered.set()
        await app(scope, receive, sending)

    client = TestClient(wrapped)
    token = csrf_of(client.get("/signup").text)
    engine = factory.kw["bind"]

    def record(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        if not answered.is_set():
            seen.append(" ".join(statement.split()))

    answered.clear()  # the GET above was answered
    event.listen(engine, "before_cursor_execute", record)
    try:
        r = client.post("/signup", data={**FORM, "email": email, "csrf_token": token},
                        follow_redirects=False)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert r.status_code == 303
    return seen


def test_the_sign_up_runs_the_same_statements_for_any_address(db: Factory) -> None:
    """No timing to enumerate: the statements run before the answer are the same, in the same
    order, for a new address and one that is pending, active, paused, unsubscribed or bounced
    (what differs, the email, is sent after the answer). SQLite and PostgreSQL."""
    for status in ("pending", "active", "paused", "unsubscribed", "bounced"):
        add_subscriber(db, f"{status}@example.org", status=status, rules=("graph",))
    runs = {status: _statements_before_the_answer(db, f"{status}@example.org")
            for status in ("new", "pending", "active", "paused", "unsubscribed", "bounced")}
    assert all(run == runs["new"] for run in runs.values()), {
        k: len(v) for k, v in runs.items()}
    assert any("INSERT INTO signup_request" in q for q in runs["new"])


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch_chromium() as b:
        yield b


@pytest.mark.browser
def test_in_the_browser_a_returning_subscriber_sees_and_gets_what_they_entered(
    factory: Factory, sink: SMTPSink, browser: Any
) -> None:
    """Chromium: fill the sign-up form for an unsubscribed address with a new rule, topic and
    weekly schedule; the emailed link's page says what confirming does; the button applies it
    and the manage page shows the new rule and schedule."""
    sid, new_topic = _returning(factory, "back@example.org")

    def app(url: str) -> Any:
        return create_app(settings_for(url), mailer=SMTPMailer(sink.url, timeout=10),
                          session_factory=factory)

    with LiveServer(app) as server:
        page = browser.new_page()
        page.goto(server.url + "/signup")
        page.fill("#email", "back@example.org")
        page.check(f"input[name=topics][value='{new_topic}']")
        page.fill("#rules", "diffusion")
        page.select_option("#frequency", "weekly")
        page.select_option("#weekday", "1")
        page.select_option("#hour", "9")
        page.select_option("#timezone", "Europe/Berlin")
        page.click("#signup button[type=submit]")
        page.wait_for_selector("text=Check your inbox")
        page.goto(server.url + _confirm_path(sink, "back@example.org"))
        plan = page.inner_text(".confirm-plan")
        assert "Tuesdays at 09:00 (Europe/Berlin)" in plan and "diffusion" in plan
        assert "New" in plan and page.is_visible(".confirm-returning")
        page.click("button:has-text('Yes, confirm my subscription')")
        page.wait_for_selector("text=Welcome!")
        assert "diffusion" in page.content()
        page.close()
    assert _state(factory, sid)[:7] == ("active", "weekly", 9, 1, "Europe/Berlin",
                                        ["diffusion"], ["New"])

"""The forms as a person uses them, in Chromium (Playwright on /usr/bin/chromium) against the app
served by uvicorn with a real SMTP sink: one test per stumble of issue 14's "Forms" list."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.core.defaults import DEFAULT_SOURCES
from paperalerts.core.schedule import next_digest_at, zone
from paperalerts.core.subscribers import subscriber_links
from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.edges.mailer import SMTPMailer
from paperalerts.faces.web import create_app
from smtp_sink import SMTPSink
from web_support import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    SECRET,
    LiveServer,
    add_subscriber,
    admin_login,
    launch_chromium,
    make_admin,
    settings_for,
    urls_in,
    wait_for,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


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
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1100, "height": 900},
                                  timezone_id="Europe/Berlin")
    p = context.new_page()
    yield p
    context.close()


def _manage_url(server: LiveServer, sid: int) -> str:
    return subscriber_links(server.url, SECRET, sid, 1, now=datetime.now(UTC)).manage


def _settle(page: Any) -> None:
    """Let the page's script finish what it does on load (the live check's fetches)."""
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(300)


def test_live_check_reports_every_bad_line(page: Any, server: LiveServer) -> None:
    """The sign-up rules box lists each bad line with its own message and caret, not only the
    first one."""
    page.goto(server.url + "/signup")
    page.fill("#rules", "diffusion\ngraph AND (model\nagents\nNOT robots")
    page.wait_for_selector("#rules-check.bad")
    messages = page.locator("#rules-check .message").all_inner_texts()
    assert len(messages) == 2, messages
    assert messages[0].startswith("line 2: unbalanced parenthesis")
    assert messages[1].startswith("line 4: ")
    assert page.locator("#rules-check pre.caret").count() == 2


def test_rule_error_after_submit_shows_once_and_goes_when_fixed(
    page: Any, server: LiveServer, factory: sessionmaker[Session]
) -> None:
    """After submitting a bad rule the error is on the page once (the server's, not also the
    live check's copy); typing a fixed rule replaces it with "✓ valid", leaving no stale error."""
    sid = add_subscriber(factory, "fixer@example.org")
    page.goto(_manage_url(server, sid))
    page.fill("#new-query", "graph AND (transformer")
    page.wait_for_selector("#new-check.bad")
    page.click("#add-rule button[type=submit]")
    page.wait_for_selector("[data-rule-error]")
    _settle(page)
    form_text = page.inner_text("#add-rule")
    assert form_text.count("unbalanced parenthesis") == 1, form_text
    page.fill("#new-query", "graph AND (transformer OR diffusion)")
    page.wait_for_selector("#new-check.ok")
    assert page.locator("#add-rule [data-rule-error]").count() == 0
    assert "unbalanced parenthesis" not in page.inner_text("#add-rule")


def _posts_on_reload(page: Any) -> list[str]:
    """The POSTs a reload of the page sends (none when the page came from a redirect)."""
    response = page.reload()
    page.wait_for_load_state("load")
    request, sent = response.request, []
    while request is not None:
        sent.append(f"{request.method} {request.url}")
        request = request.redirected_from
    return [r for r in sent if r.startswith("POST")]


def test_a_failed_save_redirects_so_a_reload_does_not_post_again(
    page: Any, server: LiveServer, factory: sessionmaker[Session]
) -> None:
    """Post/redirect/get: after a failed save (sign-up, manage page, admin rule, topic and
    source forms) the browser is on the form's GET address with the error and the typed values,
    and reloading it sends no POST."""
    sid = add_subscriber(factory, "prg@example.org", rules=("diffusion",))
    make_admin(factory)
    with factory() as s:
        rule_id = s.scalars(select(m.Rule.id)).one()

    page.goto(server.url + "/signup")
    page.fill("#email", "not an address")
    page.evaluate("document.querySelector('#email').type = 'text'")  # past the browser's check
    page.fill("#rules", "diffusion")
    page.click("#signup button[type=submit]")
    page.wait_for_selector(".error")
    page.wait_for_load_state("load")
    assert page.url == server.url + "/signup"
    assert page.input_value("#rules") == "diffusion"
    assert _posts_on_reload(page) == []

    manage = _manage_url(server, sid)
    page.goto(manage)
    page.fill("#new-query", "(oops")
    page.click("#add-rule button[type=submit]")
    page.wait_for_selector("[data-rule-error]")
    assert page.url == manage and page.input_value("#new-query") == "(oops"
    assert _posts_on_reload(page) == []

    admin_login(page, server.url)
    for path, fill, expect in [
        (f"/admin/rules/{rule_id}", {"#query": "title:(x"}, "unbalanced parenthesis"),
        ("/admin/topics/new", {"#name": "T", "#query": "NOT x"}, "positive term"),
        ("/admin/sources/new", {"#name": "feed", "#url": "ftp://example.org/x"}, "http(s)"),
    ]:
        page.goto(server.url + path)
        for selector, value in fill.items():
            page.fill(selector, value)
        page.click("main form button[type=submit] >> nth=0")
        page.wait_for_selector(f"text={expect}")
        assert page.url == server.url + path, path
        assert _posts_on_reload(page) == [], path


def test_timezone_picker_is_curated_grouped_and_preselects_the_browsers_zone(
    page: Any, server: LiveServer, browser: Any
) -> None:
    """The timezone list has canonical zones grouped by region (no Factory, localtime or
    US/Eastern, far fewer than zoneinfo's ~600 names), with the browser's zone selected; a
    browser reporting a zone outside the list still gets it selected."""
    page.goto(server.url + "/signup")
    assert page.input_value("#timezone") == "Europe/Berlin"
    values = page.eval_on_selector_all("#timezone option", "els => els.map(e => e.value)")
    groups = page.eval_on_selector_all("#timezone optgroup", "els => els.map(e => e.label)")
    assert not {"Factory", "localtime", "posixrules", "US/Eastern", "Etc/GMT+5"} & set(values)
    assert "America/New_York" in values and "UTC" in values and len(values) < 450
    assert groups[:3] == ["UTC", "Africa", "America"] and "Europe" in groups
    label = page.eval_on_selector("#timezone option[value='America/Argentina/Buenos_Aires']",
                                  "e => e.textContent")
    assert label == "Argentina / Buenos Aires"

    other = browser.new_context(timezone_id="Asia/Calcutta")
    try:
        p2 = other.new_page()
        p2.goto(server.url + "/signup")
        reported = p2.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone")
        assert p2.input_value("#timezone") == reported and reported
    finally:
        other.close()


def test_weekly_on_shows_only_for_weekly(page: Any, server: LiveServer) -> None:
    """"Weekly on" is shown only for a weekly digest, "At (your time)" not for instant alerts."""
    page.goto(server.url + "/signup")
    assert page.input_value("#frequency") == "daily"
    assert not page.is_visible("#weekday") and page.is_visible("#hour")
    page.select_option("#frequency", "weekly")
    assert page.is_visible("#weekday") and page.is_visible("#hour")
    page.select_option("#frequency", "instant")
    assert not page.is_visible("#weekday") and not page.is_visible("#hour")


def test_signing_up_again_sends_a_manage_link_with_the_ticked_topic(
    page: Any, server: LiveServer, sink: SMTPSink, factory: sessionmaker[Session]
) -> None:
    """An active address signed up again gets no new confirmation (nothing to confirm) but one
    "already subscribed" email whose link opens the preferences with the topic ticked at
    sign-up ready to follow; saving follows it. A second try within a day sends nothing more."""
    sid = add_subscriber(factory, "again@example.org", rules=("diffusion",))
    with transaction(factory) as s:
        topic = m.Topic(name="LLM agents", query="agent*", normalized="agent*")
        s.add(topic)
        s.flush()
        topic_id = topic.id
    for _ in range(2):
        page.goto(server.url + "/signup")
        page.fill("#email", "again@example.org")
        page.check(f"input[name=topics][value='{topic_id}']")
        page.click("#signup button[type=submit]")
        page.wait_for_selector("text=Check your inbox")
        assert page.url == server.url + "/signup/done"
    wait_for(lambda: len(sink.messages) >= 1)
    page.wait_for_timeout(500)
    assert len(sink.messages) == 1
    msg = sink.messages[0].message
    assert msg["Subject"] == "You are already subscribed to paper alerts"
    follow = next(u for u in urls_in(msg) if "follow=" in u)
    page.goto(follow)
    assert page.is_visible("#follow-hint")
    assert page.is_checked(f"input[name=topics][value='{topic_id}']")
    page.click("button:has-text('Save preferences')")
    page.wait_for_selector("text=Your preferences are saved.")
    with factory() as s:
        followed = set(s.scalars(select(m.SubscriberTopic.topic_id)
                                 .where(m.SubscriberTopic.subscriber_id == sid)))
        sub = s.get_one(m.Subscriber, sid)
        assert followed == {topic_id} and sub.status == "active"
        kinds = list(s.scalars(select(m.Delivery.kind)))
    assert kinds == ["notice"]


def test_manage_page_says_when_the_next_digest_goes_out(
    page: Any, server: LiveServer, factory: sessionmaker[Session]
) -> None:
    """The manage page shows the next digest as a weekday and time in the subscriber's zone."""
    sid = add_subscriber(factory, "when@example.org", rules=("diffusion",))
    with transaction(factory) as s:
        sub = s.get_one(m.Subscriber, sid)
        sub.frequency, sub.send_hour, sub.weekday, sub.timezone = "weekly", 8, 1, "Asia/Tokyo"
    page.goto(_manage_url(server, sid))
    at = next_digest_at("weekly", 8, 1, "Asia/Tokyo", datetime.now(UTC))
    local = at.astimezone(zone("Asia/Tokyo"))
    assert local.strftime("%a %H:%M").startswith("Tue 08:00")
    text = page.inner_text("#next-digest")
    assert text.startswith("Next digest: Tue") and "08:00" in text and "Asia/Tokyo" in text


def test_topics_page_says_saved(page: Any, server: LiveServer,
                                factory: sessionmaker[Session]) -> None:
    """Saving a topic lands on the topics list with "Topic saved."."""
    make_admin(factory)
    admin_login(page, server.url)
    page.goto(server.url + "/admin/topics/new")
    page.fill("#name", "Diffusion")
    page.fill("#query", "diffusion OR \"score-based\"")
    page.click("text=Save topic")
    page.wait_for_url(server.url + "/admin/topics?done=saved")
    assert page.inner_text("[role=status]") == "Topic saved."


def test_sources_table_fits_1280_pixels(
    browser: Any, server: LiveServer, factory: sessionmaker[Session]
) -> None:
    """The six default sources, failing with errors that quote long URLs, fit a 1,280 px
    window: the page does not scroll sideways and the table stays inside the page's column
    (scrollWidth and boxes measured in the browser)."""
    error = ("HTTP 404 from https://huggingface.co/api/daily_papers?date=2024-03-12&limit=100"
             "&sort=trending&page=0&fields=title,summary,authors,upvotes,comments,organization"
             " (after 3 attempts)")
    with transaction(factory) as s:
        for d in DEFAULT_SOURCES:
            s.add(m.Source(name=d.name, kind=d.kind, url=d.url + "?" + "a=b&" * 20,
                           every_seconds=d.every_seconds, health="failing",
                           consecutive_failures=12, last_error=error,
                           last_success_at=datetime.now(UTC)))
    make_admin(factory)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        p = context.new_page()
        admin_login(p, server.url)
        p.goto(server.url + "/admin/sources")
        widths = p.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], widths
        table, column = p.evaluate(
            "[document.querySelector('table.sources, main table').getBoundingClientRect().right,"
            " (m => m.getBoundingClientRect().right - parseFloat(getComputedStyle(m)"
            ".paddingRight))(document.querySelector('main'))]")
        assert table <= column + 0.5, (table, column)
    finally:
        context.close()


def test_audit_log_lists_only_changed_fields(
    page: Any, server: LiveServer, factory: sessionmaker[Session]
) -> None:
    """Renaming a subscriber shows one audit line, the name, not every field of the record."""
    sid = add_subscriber(factory, "audited@example.org")
    make_admin(factory)
    admin_login(page, server.url)
    page.goto(f"{server.url}/admin/subscribers/{sid}")
    page.fill("#name", "Ada")
    page.click("text=Save >> nth=-1")
    page.wait_for_selector("text=Saved.")
    page.goto(f"{server.url}/admin/audit?entity=subscriber&entity_id={sid}")
    rows = page.locator("tr.audit-row").all_inner_texts()
    assert len(rows) == 1, rows
    assert "\tname\t" in rows[0] and '"Ada"' in rows[0]


def test_wrong_password_keeps_the_username_and_next(
    page: Any, server: LiveServer, factory: sessionmaker[Session]
) -> None:
    """A wrong password brings back the form with the username filled in and the page asked
    for still the destination; the right password then lands there."""
    make_admin(factory)
    page.goto(server.url + "/admin/deliveries")
    assert page.url.endswith("/admin/login?next=/admin/deliveries")
    page.fill("#username", ADMIN_USER)
    page.fill("#password", "not the password")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Wrong username or password.")
    assert page.input_value("#username") == ADMIN_USER
    assert "next=%2Fadmin%2Fdeliveries" in page.url
    page.fill("#password", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(server.url + "/admin/deliveries")

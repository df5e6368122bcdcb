"""End to end in Chromium (Playwright driving Debian's /usr/bin/chromium) against the app served
by uvicorn, with a real SMTP sink and the real delivery pipeline. Screenshots of the main pages
go to artifacts/screenshots/ (not committed)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from conftest import IN_CI, REPO
from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.edges.mailer import SMTPMailer
from paperalerts.faces.step_config import delivery_config
from paperalerts.faces.web import create_app
from paperalerts.pipeline import match_new_events
from paperalerts.pipeline.deliver import dispatch_due_digests, send_delivery
from smtp_sink import SMTPSink
from web_support import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    LiveServer,
    add_subscriber,
    make_admin,
    real_papers,
    seed_papers,
    settings_for,
    urls_in,
    wait_for,
)

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = REPO / "artifacts" / "screenshots"

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        if IN_CI:
            pytest.fail(f"{CHROMIUM} is missing (CI=true: browser tests must not skip)")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()




@pytest.fixture
def server(factory: sessionmaker[Session], sink: SMTPSink) -> Iterator[LiveServer]:
    def app(url: str) -> Any:
        return create_app(settings_for(url), mailer=SMTPMailer(sink.url, timeout=10),
                          session_factory=factory)

    with LiveServer(app) as live:
        yield live


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _send_digests(factory: sessionmaker[Session], live: LiveServer, sink: SMTPSink) -> list[int]:
    """One real tick's worth: events for the stored papers, matching, a due digest, sending."""
    now = datetime.now(UTC)
    with transaction(factory) as s:
        for pid in s.scalars(select(m.Paper.id)):
            s.add(m.PaperEvent(paper_id=pid, kind="new", at=now))
        s.execute(update(m.Subscriber).values(next_digest_at=now - timedelta(minutes=1)))
    match_new_events(factory, now=now)
    cfg = delivery_config(settings_for(live.url))
    ids = dispatch_due_digests(factory, cfg, now=now)
    mailer = SMTPMailer(sink.url, timeout=10)
    try:
        for did in ids:
            assert send_delivery(factory, did, mailer=mailer, cfg=cfg, now=now).status == "sent"
    finally:
        mailer.close()
    return ids


def test_subscriber_signs_up_fixes_a_rule_and_unsubscribes(
    browser: Any, server: LiveServer, sink: SMTPSink, factory: sessionmaker[Session]
) -> None:
    """Sign up in the browser -> confirm with the link from the email the SMTP sink received ->
    add a rule with a syntax error, shown live at its position -> fix it -> receive a real
    digest -> unsubscribe with its link."""
    papers = real_papers()
    seed_papers(factory, papers, datetime.now(UTC))
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(server.url + "/signup")
    assert page.input_value("#timezone")  # filled from the browser's zone
    page.fill("#email", "reader@example.org")
    page.fill("#rules", "title:diffusion")
    page.wait_for_selector("#rules-check.ok")
    shot(page, "01-signup")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Check your inbox")
    wait_for(lambda: len(sink.messages) == 1)
    confirm = next(u for u in urls_in(sink.messages[0].message) if "/confirm/" in u)
    page.goto(confirm)
    page.click("text=Yes, confirm my subscription")
    page.wait_for_selector("text=Your subscription is confirmed")

    page.fill("#new-query", "graph AND (transformer")
    page.wait_for_selector("#new-check.bad")
    assert "unbalanced parenthesis at 10" in page.inner_text("#new-check")
    caret = page.inner_text("#new-check pre.caret").split("\n")
    assert caret[0] == "graph AND (transformer" and caret[1] == " " * 10 + "^"
    shot(page, "02-manage-rule-error")
    page.click("#add-rule button[type=submit]")
    page.wait_for_selector("[data-rule-error]")
    assert "unbalanced parenthesis at 10" in page.inner_text("[data-rule-error]")
    page.fill("#new-query", "graph AND (transformer OR diffusion)")
    page.wait_for_selector("#new-check.ok")
    page.click("#add-rule button[type=submit]")
    page.wait_for_selector("text=Rule added.")
    with factory() as s:
        queries = list(s.scalars(select(m.Rule.query).order_by(m.Rule.id)))
    assert queries == ["title:diffusion", "graph AND (transformer OR diffusion)"]
    shot(page, "03-manage")

    ids = _send_digests(factory, server, sink)
    assert len(ids) == 1 and len(sink.messages) == 2
    digest = sink.messages[1].message
    wanted = [p.title for p in papers if "diffusion" in p.title.lower()]
    body = digest.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert all(t.split(":")[0] in body for t in wanted)
    with factory() as s:
        view_key = s.get_one(m.Delivery, ids[0]).view_key
    page.goto(f"{server.url}/d/{view_key}")
    assert page.locator(f"text={wanted[0].split(':')[0]}").count() >= 1
    shot(page, "04-view-online")
    unsubscribe = next(u for u in urls_in(digest) if "/u/" in u)
    page.goto(unsubscribe)
    shot(page, "05-unsubscribe")
    page.click("button:has-text('Unsubscribe')")
    page.wait_for_selector("text=You are unsubscribed")
    shot(page, "06-unsubscribed")
    with factory() as s:
        assert s.scalars(select(m.Subscriber.status)).one() == "unsubscribed"


def test_admin_edits_a_rule_with_preview_and_the_audit_shows_it(
    browser: Any, server: LiveServer, factory: sessionmaker[Session]
) -> None:
    """Admin login -> a subscriber's rule -> live validation -> preview of the last days' papers
    with the matched words highlighted -> save -> the audit log shows before and after."""
    papers = real_papers()
    seed_papers(factory, papers, datetime.now(UTC))
    sid = add_subscriber(factory, "member@example.org", rules=("diffusion",))
    with transaction(factory) as s:
        s.add(m.Source(name="hf-daily", kind="hf-api", url="https://huggingface.co/api/daily_papers",
                       last_entry_count=9, last_success_at=datetime.now(UTC)))
        s.add(m.Topic(name="LLM agents", description="Language-model agents",
                      query="agent* AND (LLM OR \"language model\")",
                      normalized="agent* AND (LLM OR \"language model\")"))
    make_admin(factory)
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(server.url + "/admin/subscribers")
    page.fill("#username", ADMIN_USER)
    page.fill("#password", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Subscribers')")
    shot(page, "10-admin-subscribers")
    page.click("text=member@example.org")
    page.click("text=Edit and preview")
    page.fill("#query", "title:(diffusion OR consistency")
    page.wait_for_selector("#query-check.bad")
    page.fill("#query", "title:(diffusion OR consistency)")
    page.wait_for_selector("#query-check.ok")
    page.click("#preview-button")
    page.wait_for_selector("#preview .paper")
    titles = page.locator("#preview .paper .t").all_inner_texts()
    wanted = {p.title for p in papers if {"diffusion", "consistency"} & set(
        w.strip(":,").lower() for w in p.title.split())}
    assert set(titles) == wanted and len(wanted) == 3
    marks = {t.lower() for t in page.locator("#preview mark").all_inner_texts()}
    assert marks == {"diffusion", "consistency"}
    shot(page, "11-admin-rule-preview")
    page.click("#save")
    page.wait_for_selector("text=Rule saved.")
    page.goto(f"{server.url}/admin/audit?entity=rule")
    rows = page.locator("tr.audit-row").all_inner_texts()
    query_row = next(r for r in rows if "query" in r)
    assert '"diffusion"' in query_row and '"title:(diffusion OR consistency)"' in query_row
    assert "admin:root" in rows[0]
    shot(page, "12-admin-audit")
    for path, name in [("/admin", "13-admin-dashboard"), ("/admin/sources", "14-admin-sources"),
                       ("/admin/topics", "15-admin-topics"),
                       (f"/admin/subscribers/{sid}", "16-admin-subscriber")]:
        page.goto(server.url + path)
        shot(page, name)
    assert Path(SHOTS / "12-admin-audit.png").stat().st_size > 10_000

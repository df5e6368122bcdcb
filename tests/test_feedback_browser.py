"""The feedback journey in Chromium (issue 13): a reader opens "More like this" from a digest the
real SMTP sink received, confirms with the one button, sees what changed (and that undo is
offered), and the next digest, sent by the real pipeline, shows "You might also like"."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from feedback_support import (
    LG_OR_AI,
    RETRIEVAL_DAY1,
    RETRIEVAL_DAY2,
    arxiv_fixture,
    digest_round,
    feedback_links_in,
    html_of,
    text_of,
)
from paperalerts.edges.db import models as m
from paperalerts.edges.mailer import SMTPMailer
from paperalerts.faces.web import create_app
from smtp_sink import SMTPSink
from test_web_browser import browser, shot  # noqa: F401  (the Chromium fixture)
from web_support import LiveServer, add_subscriber, seed_papers, settings_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]
T0 = datetime(2026, 8, 12, 20, 0, tzinfo=UTC)


@pytest.fixture
def server(factory: sessionmaker[Session], sink: SMTPSink) -> Iterator[LiveServer]:
    def app(url: str) -> Any:
        return create_app(settings_for(url, recommend_min_positives=1),
                          mailer=SMTPMailer(sink.url, timeout=10), session_factory=factory)

    with LiveServer(app) as live:
        yield live


def test_more_like_this_in_a_received_digest_brings_recommendations_next_time(
    browser: Any, server: LiveServer, sink: SMTPSink, factory: sessionmaker[Session]  # noqa: F811
) -> None:
    """Digest 1 (rule title:retrieval) arrives -> Chromium opens its "More like this" link ->
    the page asks first (nothing recorded yet) -> click -> "Thanks, noted" with Undo -> digest 2
    arrives with a "You might also like" section of unmatched papers, shown in the browser."""
    settings = settings_for(server.url, recommend_min_positives=1)
    day1 = arxiv_fixture(RETRIEVAL_DAY1)
    seed_papers(factory, day1, T0 - timedelta(hours=1))
    add_subscriber(factory, "reader@example.org", rules=("title:retrieval",), now=T0)
    (first,) = digest_round(factory, settings, sink, T0)
    links = feedback_links_in(text_of(first))
    liked = next(p for p in day1 if "retrieval" in p.title.lower())

    page = browser.new_page(viewport={"width": 1000, "height": 800})
    page.set_content(html_of(first))  # the email as a mail client shows it
    href = page.locator("a:has-text('More like this')").first.get_attribute("href")
    assert href == links[(liked.id, "more")]
    page.goto(href)
    page.wait_for_selector("h1:has-text('Show you more papers like this one?')")
    assert liked.title[:30] in page.inner_text("main")
    with factory() as s:
        assert s.scalars(select(m.Feedback)).all() == []  # the GET changed nothing
    shot(page, "30-feedback-confirm")
    page.click("button:has-text('Yes, more like this')")
    page.wait_for_selector("text=Thanks, noted")
    assert "you want more papers like" in page.inner_text("#feedback-result")
    assert page.locator("#undo-form button").is_visible()
    shot(page, "31-feedback-done")
    with factory() as s:
        assert s.scalars(select(m.Feedback.label)).all() == ["more"]

    seed_papers(factory, arxiv_fixture(RETRIEVAL_DAY2) + arxiv_fixture(LG_OR_AI),
                T0 + timedelta(hours=2))
    (second,) = digest_round(factory, settings, sink, T0 + timedelta(days=1))
    page.set_content(html_of(second))
    heading = page.locator("h2#recommendations")
    assert heading.inner_text() == "You might also like"
    recs = page.locator("div.rec a.t").all_inner_texts()
    with factory() as s:
        stored = list(s.scalars(select(m.Recommendation.paper_id)))
        matched = set(s.scalars(select(m.Match.paper_id)))
    assert 1 <= len(recs) == len(stored) <= 5 and not set(stored) & matched
    assert all(r.strip() for r in recs)
    shot(page, "32-digest-with-recommendations")

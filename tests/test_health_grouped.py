"""Failing sources are grouped by what their error means: with no network, six sources are one
dashboard card ("no network or DNS") linking to each source, not six raw ConnectError cards; the
"fetched" count of the last 24 hours counts only scrapes that fetched a page."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.core.health import Incident, error_meaning, group_incidents
from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.edges.db.health_repo import pipeline_counts
from paperalerts.faces.web import create_app
from web_support import LiveServer, admin_login, launch_chromium, make_admin, settings_for

DNS = ("ConnectError: [Errno -2] Name or service not known "
       "(gave up after 3 attempts)")


@pytest.mark.parametrize(("error", "meaning"), [
    (DNS, "no network or DNS"),
    ("ConnectError: [Errno 111] Connection refused", "connection refused"),
    ("HTTP 404", "the page is gone"),
    ("HTTP 503 from https://x.example/ (gave up after 3 attempts)", "the server failed"),
    ("no complete answer within the 20 s fetch deadline (gave up after 20.1 s)", "timed out"),
    ("something new\nwith a second line", "something new"),
    (None, "no error recorded"),
])
def test_errors_are_named_by_what_they_mean(error: str | None, meaning: str) -> None:
    """A raw fetch error becomes words an operator acts on; an unknown one is its first line."""
    assert error_meaning(error).startswith(meaning)


def test_sources_failing_for_one_cause_are_one_group() -> None:
    """Six DNS failures are one group naming the cause; another cause and the scheduler stay
    their own; order follows the first member."""
    def src(name: str, cause: str) -> Incident:
        return Incident(key=f"source:{name}", kind="source", title=f"Source {name}", detail="",
                        cause=cause)
    dns = error_meaning(DNS)
    found = [Incident(key="scheduler", kind="scheduler", title="beat", detail=""),
             *[src(f"s{i}", dns) for i in range(6)], src("gone", error_meaning("HTTP 404"))]
    groups = group_incidents(found)
    assert [len(g.incidents) for g in groups] == [1, 6, 1]
    assert groups[1].title == f"6 sources are failing: {dns}"
    assert groups[1].sources == tuple(f"s{i}" for i in range(6))


@pytest.fixture
def world(factory: sessionmaker[Session]) -> Iterator[dict[str, Any]]:
    now = datetime.now(UTC)
    ids = {}
    with transaction(factory) as s:
        for i in range(6):
            src = m.Source(name=f"src-{i}", kind="feed", url=f"https://feeds{i}.example/rss",
                           health="failing", consecutive_failures=3, failing_since=now,
                           last_error=DNS, last_run_at=now)
            s.add(src)
            s.flush()
            ids[src.name] = src.id
            s.add(m.Snapshot(source_id=src.id, fetched_at=now - timedelta(minutes=5),
                             status="failed", error=DNS))
        ok = m.Source(name="fine", kind="feed", url="https://ok.example/rss",
                      last_success_at=now, last_run_at=now)
        s.add(ok)
        s.flush()
        s.add(m.Snapshot(source_id=ok.id, fetched_at=now - timedelta(minutes=5), status="ok"))
    yield {"ids": ids, "now": now}


def test_fetched_counts_only_scrapes_that_fetched(factory: sessionmaker[Session],
                                                   world: dict[str, Any]) -> None:
    """Six failed scrapes and one healthy one in the last day: 1 fetched, not 7."""
    with factory() as s:
        assert pipeline_counts(s, world["now"] - timedelta(hours=24)).fetched == 1


@pytest.mark.browser
def test_dashboard_groups_a_dead_network_into_one_card(factory: sessionmaker[Session],
                                                       world: dict[str, Any]) -> None:
    """In Chromium, six sources failing with the same DNS error are one card saying what it
    means, with a link to each source; the day's flow shows 1 fetched."""
    make_admin(factory)

    def app(url: str) -> Any:
        return create_app(settings_for(url), session_factory=factory)

    with LiveServer(app) as live, launch_chromium() as browser:
        p = browser.new_page()
        admin_login(p, live.url)
        p.goto(f"{live.url}/admin")
        cards = p.locator("#health .incident-group")
        assert cards.count() == 1
        card = cards.first.inner_text()
        assert "6 sources are failing: no network or DNS" in card
        hrefs = p.eval_on_selector_all(".incident-group a", "els => els.map(e => e.pathname)")
        assert sorted(hrefs) == sorted(f"/admin/sources/{i}" for i in world["ids"].values())
        assert p.inner_text("[data-count=fetched] b") == "1"

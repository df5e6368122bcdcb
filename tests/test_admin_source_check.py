"""The admin checks a source as the CLI does before saving it (a 404 or a page of another kind is
refused with what it is, nothing saved, unless "save without checking"), and Preview shows the
papers of every kind, not only html. Driven in Chromium against the app served by uvicorn, over a
local HTTP server of the real fixture pages."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.edges.db import models as m
from paperalerts.faces.web import create_app
from web_support import LiveServer, admin_login, launch_chromium, make_admin, settings_for

pytestmark = [pytest.mark.browser]
HF_API = "hf_api_daily_papers/hf_api_daily_papers_2024-03-12.json"


@pytest.fixture
def page(factory: sessionmaker[Session]) -> Iterator[tuple[Any, str]]:
    make_admin(factory)

    def app(url: str) -> Any:
        return create_app(settings_for(url, allow_private_urls=True), session_factory=factory)

    with LiveServer(app) as live, launch_chromium() as browser:
        p = browser.new_page()
        admin_login(p, live.url)
        yield p, live.url


def _add(p: Any, base: str, name: str, kind: str, url: str, *, nocheck: bool = False) -> None:
    p.goto(f"{base}/admin/sources/new")
    p.fill("#name", name)
    p.select_option("#kind", kind)
    p.fill("#url", url)
    if nocheck:
        p.check("input[name=nocheck]")
    p.click("button[type=submit]:has-text('Save')")
    p.wait_for_load_state()


def _names(factory: sessionmaker[Session]) -> list[str]:
    with factory() as s:
        return list(s.scalars(select(m.Source.name).order_by(m.Source.name)))


def test_admin_refuses_a_404_and_a_wrong_kind_and_saves_a_good_source(
    page: tuple[Any, str], factory: sessionmaker[Session], static_server: str
) -> None:
    """A URL that answers 404 and a JSON API page added as an RSS feed are refused with the
    reason (the second names the kind it parses as) and nothing is saved; the right kind is
    saved with "Source added."; "save without checking" saves an unreachable one."""
    p, base = page
    _add(p, base, "gone", "feed", f"{static_server}/no/such/feed.xml")
    assert "404" in p.inner_text("body") and _names(factory) == []
    _add(p, base, "wrong", "feed", f"{static_server}/{HF_API}")
    body = p.inner_text("body")
    assert "is not a feed page" in body and "parses as hf-api" in body
    assert _names(factory) == []
    _add(p, base, "hf", "hf-api", f"{static_server}/{HF_API}")
    assert "Source added." in p.inner_text("body") and _names(factory) == ["hf"]
    _add(p, base, "later", "feed", f"{static_server}/down/feed.xml", nocheck=True)
    assert _names(factory) == ["hf", "later"]


def test_admin_preview_shows_the_papers_of_any_kind(
    page: tuple[Any, str], factory: sessionmaker[Session], static_server: str
) -> None:
    """Preview of an hf-api URL lists its nine papers and saves nothing (it was html only)."""
    p, base = page
    p.goto(f"{base}/admin/sources/new")
    p.fill("#name", "hf")
    p.select_option("#kind", "hf-api")
    p.fill("#url", f"{static_server}/{HF_API}")
    p.click("button:has-text('Preview')")
    p.wait_for_selector("#preview")
    assert "9 paper(s)" in p.inner_text("#preview h2")
    assert p.locator("#preview tr").count() == 10
    assert "Stealing Part of a Production Language Model" in p.inner_text("#preview")
    assert _names(factory) == []

"""Hostile selectors: a CSS selector is saved only if it can run (CLI, admin, API), and a source
whose stored selectors are broken is marked failing by the scrape, never left "ok"."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.core.sources import html_list
from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.pipeline import scrape_source
from web_support import WebEnv, api_token, make_admin

CARDS = {"item": "article", "title": "h3 a", "link": "h3 a"}
NOW = datetime(2026, 9, 28, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({**CARDS, "title": "h3::before"}, "title selector: 'h3::before' cannot be used"),
        ({**CARDS, "item": "article::first-line"}, "item selector: 'article::first-line' cannot"),
        ({**CARDS, "item": "article@data-id"}, "item selector: 'article@data-id' ends in @data-id"),
        ({**CARDS, "authors": "span::selection@x"}, "authors selector: 'span::selection@x'"),
    ],
)
def test_a_selector_that_cannot_run_is_refused_naming_field_and_selector(
    options: dict[str, str], message: str
) -> None:
    """Pseudo-elements (soupsieve cannot run them) and an item selector ending in @attr (items
    are elements) are refused by the one validation function, with field and selector named."""
    with pytest.raises(html_list.SelectorError) as e:
        html_list.selectors_from_options(options)
    assert str(e.value).startswith(message)


def test_the_api_refuses_a_pseudo_element_with_422_not_500(
    factory: sessionmaker[Session],
) -> None:
    """POST /api/v1/sources with a pseudo-element or an item@attr answers 422 naming the
    selector; nothing is stored."""
    env = WebEnv.start(factory)
    auth = api_token(env)
    body = {"name": "cards", "kind": "html", "url": "https://list.example/trending"}
    for selectors, where in (({**CARDS, "title": "h3 a::after"}, "title selector"),
                             ({**CARDS, "item": "article@id"}, "item selector")):
        r = env.client.post("/api/v1/sources", headers=auth, json={**body, "selectors": selectors})
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["msg"].startswith(where)
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(m.Source)) == 0


def test_the_admin_refuses_a_pseudo_element_with_the_form_kept(
    factory: sessionmaker[Session],
) -> None:
    """Saving an html source in the admin with ``::before`` is a 400 that names the selector
    (not a 500), and the preview says so too."""
    make_admin(factory)
    env = WebEnv.start(factory, allow_private_urls=True)
    assert env.login().status_code == 303
    form = {"name": "cards", "kind": "html", "url": "https://list.example/t", "every": "1h",
            "enabled": "1", **{f"sel_{k}": v for k, v in CARDS.items()}, "sel_title": "h3::before"}
    r = env.post_form("/admin/sources/new", "/admin/sources", form)
    assert r.status_code == 400
    assert "title selector: &#39;h3::before&#39; cannot be used" in r.text
    form = {**form, "sel_title": "h3 a", "sel_item": "article@id"}
    r = env.post_form("/admin/sources/new", "/admin/sources", form)
    assert r.status_code == 400 and "item selector: &#39;article@id&#39; ends in @id" in r.text
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(m.Source)) == 0


def test_the_cli_refuses_an_item_selector_ending_in_an_attribute(sqlite_url: str) -> None:
    """`sources add ... --selector item=article@id` exits 2 with the reason; nothing stored."""
    env = {**os.environ, "PAPERALERTS_DATABASE_URL": sqlite_url}
    cli = [sys.executable, "-m", "paperalerts"]
    assert subprocess.run([*cli, "init", "--no-defaults"], env=env, capture_output=True,
                          timeout=120).returncode == 0
    flags = [a for k, v in {**CARDS, "item": "article@id"}.items()
             for a in ("--selector", f"{k}={v}")]
    r = subprocess.run([*cli, "sources", "add", "cards", "html", "https://list.example/t", *flags],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "item selector: 'article@id' ends in @id" in r.stderr


def test_a_source_with_broken_stored_selectors_is_failing_not_ok(
    db: sessionmaker[Session],
) -> None:
    """A source whose options were stored before this check (or written by hand) with an item
    selector ending in @attr: the scrape records a failed snapshot naming the selector and marks
    the source failing at once, instead of crashing while the source stays "ok"."""
    with transaction(db) as s:
        src = m.Source(name="cards", kind="html", url="https://list.example/t",
                       options={"selectors": {**CARDS, "item": "article@id"}},
                       health="ok", last_success_at=NOW)
        s.add(src)
        s.flush()
        sid = src.id
    page = b"<html><body><article id='1'><h3><a href='/p/1'>A</a></h3></article></body></html>"
    o = scrape_source(db, sid, fetcher=None, now=NOW, body=page, failing_after=3)
    assert o.status == "failed" and o.reason is not None
    assert "item selector: 'article@id' ends in @id" in o.reason
    with db() as s:
        src = s.get_one(m.Source, sid)
        assert src.health == "failing" and src.last_error == o.reason
        snap = s.scalars(select(m.Snapshot)).one()
        assert snap.status == "failed"

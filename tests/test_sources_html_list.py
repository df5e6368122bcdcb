"""The generic html list source: CSS selectors entered by an admin, checked on save, previewed
before saving (admin and CLI), and scraped end to end from a real local HTTP server."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from conftest import fixture_file
from paperalerts.core.sources import html_list, parse
from paperalerts.edges.db import models as m
from paperalerts.errors import ParseError
from web_support import WebEnv, api_token, make_admin

DAILY = "hf_papers_html/hf_papers_daily_2026-09-28.html"
PAPER_PAGE = "hf_papers_html/hf_paper_page_2509.24002_bs4_prettified.html"
# The rendered cards of the Daily Papers page: one <article> per paper, its title a link.
CARDS = {"item": "article", "title": "h3 a", "link": "h3 a"}
FIRST_TITLE = (
    "FuseReg: Regularizing Layer Fusion Mitigates the Reconstruction-Generation Gap in "
    "Representation Autoencoders"
)
CLI = [sys.executable, "-m", "paperalerts"]


def _daily() -> bytes:
    return fixture_file(DAILY).read_bytes()


def test_selectors_read_every_card_of_a_real_page() -> None:
    """On the real Daily Papers page, item/title/link give the 28 cards in page order, titles as
    plain text, links resolved against the page URL, and arXiv ids from /papers/<id> links."""
    papers = parse("html", _daily(), "https://huggingface.co/papers", {"selectors": CARDS})
    assert len(papers) == 28
    first = papers[0]
    assert (first.id, first.title, first.source) == ("2609.31620", FIRST_TITLE, "html")
    assert first.url == "https://huggingface.co/papers/2609.31620"
    assert len({p.id for p in papers}) == 28


def test_attribute_suffix_and_optional_fields() -> None:
    """``sel@attr`` reads an attribute; an id that is not an arXiv id becomes ``html:<id>``;
    several author matches are one author each; :scope is the item itself."""
    page = b"""<html><body><ul>
      <li data-key="p-1"><a class="t" href="/x/1">First <b>paper</b></a>
        <span class="au">Ada Lovelace</span><span class="au">Alan Turing</span>
        <p class="ab">An   abstract.</p></li>
      <li data-key="p-2"><a class="t" href="https://arxiv.org/abs/2406.01234v2">Second</a>
        <span class="au">Grace Hopper and Linus T</span></li>
      <li data-key="p-3"><span>no link here</span></li>
    </ul></body></html>"""
    sel = html_list.selectors_from_options({
        "item": "li", "title": "a.t", "link": "a.t", "id": ":scope@data-key",
        "authors": "span.au", "abstract": "p.ab",
    })
    found = html_list.extract(page, "https://list.example/trending", sel)
    assert found.items == 3
    one, two = found.papers
    assert (one.id, one.title, one.url) == ("html:p-1", "First paper", "https://list.example/x/1")
    assert one.authors == ("Ada Lovelace", "Alan Turing") and one.abstract == "An abstract."
    # The id selector gave "p-2", but the link is an arXiv link: one paper, one id everywhere.
    assert two.id == "2406.01234" and two.authors == ("Grace Hopper", "Linus T")
    assert found.skipped == ("item 3: title selector 'a.t' found nothing",)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"title": "a", "link": "a"}, "item selector: is required"),
        ({"item": "div[", "title": "a", "link": "a"}, "item selector: 'div[' is not valid CSS"),
        ({"item": "li", "title": "a:nth-child(", "link": "a"}, "title selector: 'a:nth-child('"),
        ({"item": "li", "title": "a", "link": "@href"}, "link selector: '@href' names an"),
        ({"item": "li", "title": "a", "link": "a", "upvotes": "b"}, "upvotes selector: unknown"),
    ],
)
def test_a_bad_selector_is_named_in_the_error(options: dict[str, str], message: str) -> None:
    """Validation names the field and quotes the selector that is missing or not CSS."""
    with pytest.raises(html_list.SelectorError) as e:
        html_list.selectors_from_options(options)
    assert str(e.value).startswith(message)


def test_a_page_the_selectors_do_not_fit_is_rejected_with_the_reason() -> None:
    """An item selector matching nothing (the layout changed) or items without titles is a
    ParseError naming the selector (the scrape step turns it into a rejected scrape)."""
    with pytest.raises(ParseError, match=r"item selector 'div\.paper' matched nothing"):
        parse("html", _daily(), "u", {"selectors": {**CARDS, "item": "div.paper"}})
    with pytest.raises(ParseError, match=r"none of 28 items gave a paper: item 1: title selector"):
        parse("html", _daily(), "u", {"selectors": {**CARDS, "title": "h6"}})
    with pytest.raises(ParseError, match="link selector: is required"):
        parse("html", _daily(), "u", {"selectors": {"item": "article", "title": "h3"}})
    with pytest.raises(ParseError, match="not an HTML page"):
        parse("html", b'{"dailyPapers": []}', "u", {"selectors": CARDS})


def _cli(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PAPERALERTS_DATABASE_URL": db_url,
           "PAPERALERTS_ALLOW_PRIVATE_URLS": "true"}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=120)


def _flags(selectors: dict[str, str]) -> list[str]:
    return [arg for k, v in selectors.items() for arg in ("--selector", f"{k}={v}")]


def test_cli_previews_adds_and_scrapes_an_html_source(sqlite_url: str, static_server: str) -> None:
    """`sources preview` prints what the selectors extract from the served page; `sources add`
    refuses a bad selector by name and stores good ones; `scrape` then fetches the page from
    the local HTTP server and stores its 28 papers as the source's baseline."""
    url = f"{static_server}/{DAILY}"
    assert _cli(sqlite_url, "init", "--no-defaults").returncode == 0
    r = _cli(sqlite_url, "sources", "preview", url, *_flags(CARDS))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "items\t28\tpapers\t28"
    first = ["2609.31620", FIRST_TITLE, f"{static_server}/papers/2609.31620"]
    assert lines[1].split("\t")[:3] == first
    r = _cli(sqlite_url, "sources", "add", "cards", "html", url, *_flags({**CARDS, "link": "a["}))
    assert r.returncode == 2
    assert r.stderr.startswith("error: link selector: 'a[' is not valid CSS")
    r = _cli(sqlite_url, "sources", "add", "cards", "html", url, *_flags(CARDS))
    assert r.returncode == 0, r.stderr
    r = _cli(sqlite_url, "scrape", "cards")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("cards: baseline: 28 entries stored, 28 papers new")


def _admin(factory: sessionmaker[Session]) -> WebEnv:
    make_admin(factory)
    env = WebEnv.start(factory, allow_private_urls=True)
    assert env.login().status_code == 303
    return env


def _form(url: str, selectors: dict[str, str], **extra: str) -> dict[str, Any]:
    return {"name": "cards", "kind": "html", "url": url, "every": "1h", "enabled": "1",
            **{f"sel_{k}": v for k, v in selectors.items()}, **extra}


def test_admin_previews_checks_saves_and_scrapes_an_html_source(
    factory: sessionmaker[Session], static_server: str
) -> None:
    """In the admin, Preview fetches the page and lists what the selectors extract, saving
    nothing; Save refuses an invalid selector with a message naming it (400) and keeps the
    form; a good save stores the selectors, and "scrape now" stores the page's papers."""
    env = _admin(factory)
    url = f"{static_server}/{DAILY}"
    r = env.post_form("/admin/sources/new", "/admin/sources/preview", _form(url, CARDS))
    assert r.status_code == 200
    assert "Preview: 28 paper(s) from 28 item(s)" in r.text and FIRST_TITLE in r.text
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(m.Source)) == 0
    r = env.post_form("/admin/sources/new", "/admin/sources/preview",
                      _form(url, {**CARDS, "item": "section.nothing"}))
    assert "Preview: 0 paper(s) from 0 item(s)" in r.text
    assert "<code>section.nothing</code> matched nothing on this page" in r.text
    bad = env.post_form("/admin/sources/new", "/admin/sources",
                        _form(url, {**CARDS, "title": "h3 >> a"}))
    assert bad.status_code == 400
    assert "title selector: &#39;h3 &gt;&gt; a&#39; is not valid CSS" in bad.text
    assert 'value="h3 &gt;&gt; a"' in bad.text  # the form comes back as typed
    r = env.post_form("/admin/sources/new", "/admin/sources", _form(url, CARDS),
                      follow_redirects=False)
    assert r.status_code == 303
    src = r.headers["location"].split("?")[0]
    with factory() as s:
        assert s.scalars(select(m.Source.options)).one() == {"selectors": CARDS}
    assert 'value="h3 a"' in env.client.get(src).text  # the edit form shows the selectors
    env.post_form(src, src + "/scrape", {})
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(m.Paper)) == 28
        assert s.get_one(m.Paper, "2609.31620").title == FIRST_TITLE


def test_admin_preview_of_a_page_that_is_not_there_says_why(
    factory: sessionmaker[Session], static_server: str
) -> None:
    """A fetch that fails (404 from the local server) is shown as the preview's error."""
    env = _admin(factory)
    r = env.post_form("/admin/sources/new", "/admin/sources/preview",
                      _form(f"{static_server}/no-such-page.html", CARDS))
    assert r.status_code == 200 and 'id="preview-error"' in r.text and "404" in r.text


def test_the_list_selectors_on_a_single_paper_page_are_rejected() -> None:
    """The card selectors on a real single paper page match its three comment <article>s but
    none has a card title: rejected with the reason, not read as an empty list."""
    body = fixture_file(PAPER_PAGE).read_bytes()
    with pytest.raises(ParseError, match=r"none of 3 items gave a paper: item 1: title selector"):
        parse("html", body, "https://huggingface.co/papers/2509.24002", {"selectors": CARDS})


def test_an_html_source_keeps_its_selectors_and_scrapes_on_both_databases(
    db: sessionmaker[Session], static_server: str
) -> None:
    """The selectors are stored in the source's options (a JSON column on SQLite and on
    PostgreSQL) and the scrape step reads them: the page served locally becomes a baseline of
    28 papers, and the second scrape's conditional GET is answered "not modified"."""
    from paperalerts.edges.config import Settings
    from paperalerts.edges.db.engine import transaction
    from paperalerts.edges.fetch import Fetcher
    from paperalerts.pipeline import scrape_source

    with transaction(db) as s:
        src = m.Source(name="cards", kind="html", url=f"{static_server}/{DAILY}",
                       options=html_list.selectors_from_options(CARDS).to_options())
        s.add(src)
        s.flush()
        sid = src.id
    now = datetime(2026, 9, 28, 12, tzinfo=UTC)
    with Fetcher.from_settings(Settings(allow_private_urls=True)) as fetcher:
        first = scrape_source(db, sid, fetcher=fetcher, now=now)
        again = scrape_source(db, sid, fetcher=fetcher, now=now + timedelta(hours=1))
    assert (first.status, first.baseline, first.entry_count) == ("ok", True, 28)
    assert (again.status, again.new, again.updated) == ("unchanged", (), 0)
    with db() as s:
        assert s.get_one(m.Source, sid).options == {"selectors": CARDS}
        assert s.get_one(m.Paper, "2609.31620").title == FIRST_TITLE


def test_the_json_api_creates_an_html_source_and_names_a_bad_selector(
    factory: sessionmaker[Session],
) -> None:
    """POST /api/v1/sources takes an html source's selectors and returns them in its options;
    an invalid one is a 422 naming it, and selectors on another kind are refused."""
    env = WebEnv.start(factory)
    auth = api_token(env)
    body = {"name": "cards", "kind": "html", "url": "https://list.example/trending"}
    bad = env.client.post("/api/v1/sources", headers=auth,
                          json={**body, "selectors": {**CARDS, "item": "li["}})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "selectors"]
    assert bad.json()["detail"][0]["msg"].startswith("item selector: 'li[' is not valid CSS")
    other = env.client.post("/api/v1/sources", headers=auth, json={
        **body, "kind": "feed", "selectors": CARDS})
    assert other.status_code == 422 and "not feed" in other.json()["detail"][0]["msg"]
    made = env.client.post("/api/v1/sources", headers=auth, json={**body, "selectors": CARDS})
    assert made.status_code == 201, made.text
    assert made.json()["options"] == {"selectors": CARDS}

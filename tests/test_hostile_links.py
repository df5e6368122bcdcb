"""Papers without links, and links that are not http(s): the Atom feed and every page render
them (no 500), and only http(s) links are ever rendered: dropped at parse time, and checked
again at render time for rows stored before."""

from __future__ import annotations

from datetime import UTC, datetime

import feedparser
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.core import sources
from paperalerts.core.digest import build_digest
from paperalerts.core.papers import Paper
from paperalerts.core.render import Footer, render_digest
from paperalerts.core.subscribers import subscriber_links
from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from web_support import SECRET, WebEnv, add_subscriber, make_admin, seed_papers

NOW = datetime.now(UTC)
EVIL = "javascript:alert(document.domain)"
LINKLESS = Paper(id="feed:urn:x:1", title="Diffusion without a home page", source="feed",
                 abstract="A diffusion paper that no page links to.", url="")
SCRIPTED = Paper(id="feed:urn:x:2", title="Diffusion with a scripted link", source="feed",
                 abstract="Its link runs a script.", url=EVIL, code_url="data:text/html,x")


def _matched(factory: sessionmaker[Session]) -> int:
    """A subscriber with both papers matched (rows as an older version stored them)."""
    seed_papers(factory, [LINKLESS, SCRIPTED], NOW)
    sid = add_subscriber(factory, "reader@example.org", rules=("diffusion",), now=NOW)
    with transaction(factory) as s:
        for p in (LINKLESS, SCRIPTED):
            s.add(m.Match(subscriber_id=sid, paper_id=p.id, matched_at=NOW, explanation={
                "rules": [{"name": "", "query": "diffusion", "terms": ["diffusion"]}]}))
    return sid


def test_the_atom_feed_lists_papers_without_a_web_link(factory: sessionmaker[Session]) -> None:
    """A matched paper with no web link (and one whose only link is ``javascript:``) is an
    entry with its text as content: the feed answers 200, never 500, and carries no
    ``javascript:`` or ``data:`` link."""
    sid = _matched(factory)
    env = WebEnv.start(factory)
    feed_url = subscriber_links(env.settings.base_url, SECRET, sid, 1, now=NOW).feed
    r = env.client.get(feed_url.removeprefix(env.settings.base_url))
    assert r.status_code == 200, r.text
    assert "javascript:" not in r.text and "data:text" not in r.text
    parsed = feedparser.parse(r.content)
    assert {e.title for e in parsed.entries} == {LINKLESS.title, SCRIPTED.title}
    assert r.text.count("<link ") == 2  # the feed's own self and alternate links only
    assert any("no page links to" in e.content[0].value for e in parsed.entries)


def test_the_admin_rule_preview_never_renders_a_javascript_link(
    factory: sessionmaker[Session],
) -> None:
    """The admin's rule preview lists both papers, the titles as plain text: the stored
    ``javascript:`` URL never reaches an href (the CSP is a second line, not the first)."""
    seed_papers(factory, [LINKLESS, SCRIPTED], NOW)
    make_admin(factory)
    env = WebEnv.start(factory)
    env.login()
    r = env.client.post("/admin/preview", json={"query": "diffusion", "days": 7},
                        headers={"X-CSRF-Token": env.token("/admin")})
    assert r.status_code == 200
    assert "scripted link" in r.text and "without a home page" in r.text
    assert "javascript:" not in r.text


def test_the_digest_email_renders_papers_without_links() -> None:
    """A digest of a link-less paper, plus an item whose URL and links were made before the
    parse-time check (``javascript:``): it renders with titles as text (no ``href=""``) and no
    script or data link in the HTML or the text part."""
    from dataclasses import replace

    from paperalerts.core.digest import MatchedItem, SubscriberInfo
    from paperalerts.core.paper_links import Link

    matched = [MatchedItem(paper=p, rule_id=1, rule_name="diffusion",
                           explanation={"terms": ["diffusion"]}, matched_at=NOW)
               for p in (LINKLESS, SCRIPTED)]
    digest = build_digest(SubscriberInfo(email="reader@example.org"), matched, [], now=NOW,
                          online_url="https://a.example/o")
    group = digest.groups[0]
    forged = replace(group.items[1], url=EVIL, links=(Link("Code", EVIL),))
    digest = replace(digest, groups=(replace(group, items=(group.items[0], forged)),))
    out = render_digest(digest, Footer(reason="you asked", postal_address="1 Street",
                                       manage_url="https://a.example/m",
                                       unsubscribe_url="https://a.example/u"))
    for part in (out.html, out.text):
        assert "javascript:" not in part and "data:text" not in part
    assert 'href=""' not in out.html
    assert LINKLESS.title in out.html and SCRIPTED.title in out.html


def test_parsers_drop_links_that_are_not_http() -> None:
    """A feed entry linking ``javascript:`` (or ``data:``) gives a paper with no URL: such a
    link is never stored."""
    body = f"""<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
<link>https://list.example/</link>
<item><title>Scripted</title><link>{EVIL}</link><guid>urn:x:9</guid></item>
<item><title>Data</title><link>data:text/html,hello</link><guid>urn:x:10</guid></item>
<item><title>Fine</title><link>https://list.example/p/1</link></item>
</channel></rss>""".encode()
    papers = sources.parse("feed", body, "https://list.example/feed.xml")
    assert [p.url for p in papers] == ["", "", "https://list.example/p/1"]

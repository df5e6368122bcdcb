"""What a subscriber reads: digests received through a real SMTP server (aiosmtpd) after a real
scrape of recorded pages (an HF daily-papers day and an arXiv cs.LG feed), checked as received.

Pinned here: unnamed rules read as labels built from their terms (never the raw query); "Why"
does not repeat the rule's name; the footer names only the sources that fed this digest; an
arXiv-only paper gets no Hugging Face link; a larger digest opens with a table of contents whose
jump links land on its sections; the unsubscribe wording is honest; a preview says it is one.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from conftest import fixture_file
from paperalerts.core.rules import parse, to_text
from paperalerts.edges.db import models as m
from paperalerts.edges.db import repo
from paperalerts.edges.db.engine import transaction
from paperalerts.edges.mailer import SMTPMailer
from paperalerts.pipeline import (
    DeliveryConfig,
    dispatch_due_digests,
    match_new_events,
    scrape_source,
    send_delivery,
)
from smtp_sink import SMTPSink

Factory = sessionmaker[Session]
NOW = datetime(2026, 4, 27, 7, 30, tzinfo=UTC)
CFG = DeliveryConfig(
    base_url="https://alerts.example.org",
    secret="s" * 32,
    mail_from="paperalerts <alerts@example.org>",
    mail_domain="example.org",
)
HF_DAY = "hf_api_daily_papers/hf_api_daily_papers_2024-03-12.json"
ARXIV_LG = "arxiv_rss/arxiv_rss_cs.LG_2026-04-27_trimmed3.xml"
RULES = ("upvotes:>=30", "video diffusion", "anomaly detection")


def scrape(db: Factory, name: str, kind: str, fixture: str) -> None:
    """A backfill source of `kind` scraped once from a recorded page."""
    with transaction(db) as s:
        src = m.Source(name=name, kind=kind, url=f"https://example.org/{name}", backfill=True)
        s.add(src)
        s.flush()
        sid = src.id
    out = scrape_source(db, sid, fetcher=None, now=NOW, body=fixture_file(fixture).read_bytes())
    assert out.status == "ok", out.reason


def received_digest(db: Factory, sink: SMTPSink, *rules: str) -> EmailMessage:
    """One daily subscriber with these unnamed rules, two sources that fed papers and one that
    never worked; the digest sent through the SMTP sink, as received."""
    scrape(db, "hf-daily", "hf-api", HF_DAY)
    scrape(db, "arxiv-lg", "arxiv", ARXIV_LG)
    with transaction(db) as s:
        s.add(m.Source(name="hf-trending", kind="hf-papers", url="https://example.org/t",
                       health="failing", consecutive_failures=1, last_run_at=NOW,
                       last_error="fetch: connection refused"))  # fmt: skip
        sub = m.Subscriber(email="ann@example.org", status="active", frequency="daily",
                           send_hour=7, next_digest_at=NOW - timedelta(minutes=5))  # fmt: skip
        s.add(sub)
        s.flush()
        for q in rules:
            s.add(m.Rule(subscriber_id=sub.id, query=q, normalized=to_text(parse(q))))
        repo.bump_rules_version(s)
    match_new_events(db, now=NOW)
    (did,) = dispatch_due_digests(db, CFG, now=NOW)
    mailer = SMTPMailer(sink.url, timeout=10)
    try:
        assert send_delivery(db, did, mailer=mailer, cfg=CFG, now=NOW).status == "sent"
    finally:
        mailer.close()
    (got,) = sink.messages
    return got.message


def parts(msg: EmailMessage) -> tuple[str, str]:
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    return text, html


def test_unnamed_rules_read_as_labels_not_query_text(db: Factory, sink: SMTPSink) -> None:
    """Subject, section heads and "Why" lines name unnamed rules by labels built from their
    terms ("upvotes ≥ 30", "video & diffusion"); the raw query never shows, and "Why" does not
    repeat the name in parentheses."""
    msg = received_digest(db, sink, *RULES)
    text, html = parts(msg)
    assert "upvotes ≥ 30" in str(msg["Subject"]) and "upvotes:" not in str(msg["Subject"])
    assert "## upvotes ≥ 30" in text and "## video & diffusion" in text
    assert "## anomaly & detection" in text
    assert ">upvotes ≥ 30</h2>" in html
    for part in (text, html):
        assert "upvotes:>=30" not in part and "upvotes:&gt;=30" not in part
        assert not re.search(r"Why: (?:<b>)?([^(;<\n]+?)(?:</b>)? \(\1\)", part), part
    assert "Why: upvotes ≥ 30\r\n" in text or "Why: upvotes ≥ 30\n" in text


def test_footer_names_only_the_sources_that_fed_this_digest(db: Factory, sink: SMTPSink) -> None:
    """The freshness line names the two sources whose papers are in this digest, by the names
    subscribers know (never the internal "hf-daily"), not the source that never worked
    (subscribers do not need the operator's source list)."""
    text, html = parts(received_digest(db, sink, *RULES))
    for part in (text, html):
        assert "Hugging Face Daily Papers: checked" in part and "arXiv: checked" in part
        assert "hf-trending" not in part and "hf-daily" not in part
        assert "arxiv-lg" not in part


def test_arxiv_only_papers_get_no_hugging_face_link(db: Factory, sink: SMTPSink) -> None:
    """A paper only the arXiv feed listed links to arXiv and its PDF, never to a Hugging Face
    page that may not exist; papers HF listed keep their HF link."""
    text, html = parts(received_digest(db, sink, *RULES))
    feed = fixture_file(ARXIV_LG).read_text()
    arxiv_in_mail = {i for i in re.findall(r"arxiv\.org/abs/(\d{4}\.\d{5})", text) if i in feed}
    assert arxiv_in_mail, "the anomaly rule matches papers of the cs.LG feed"
    for pid in arxiv_in_mail:
        for part in (text, html):
            assert f"huggingface.co/papers/{pid}" not in part
            assert f"arxiv.org/pdf/{pid}" in part
    assert "huggingface.co/papers/2403.06634" in text  # HF listed it (63 upvotes)


def test_larger_digest_opens_with_contents_that_jump_to_sections(
    db: Factory, sink: SMTPSink
) -> None:
    """With several rules and papers the digest starts with "In this email:" naming each
    section and its number of papers; each HTML jump link targets its section's anchor."""
    text, html = parts(received_digest(db, sink, *RULES))
    head = text.split("## ")[0]
    assert "In this email:" in head and " - upvotes ≥ 30 (2)" in head
    toc = re.search(r'<p class="toc"[^>]*>(.*?)</p>', html, re.S)
    assert toc is not None
    targets = re.findall(r'href="#([^"]+)"', toc.group(1))
    assert len(targets) == 3
    for anchor in targets:
        assert f'id="{anchor}"' in html


def test_unsubscribe_wording_is_honest(db: Factory, sink: SMTPSink) -> None:
    """The footer link leads to a page with a button, so it does not promise "one click"; the
    List-Unsubscribe header pair (RFC 8058) is the one-click path."""
    msg = received_digest(db, sink, *RULES)
    text, html = parts(msg)
    for part in (text, html):
        assert "one click" not in part.lower() and "Unsubscribe" in part
    assert "Unsubscribe (no login needed): https://alerts.example.org/u/" in text
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_a_small_digest_has_no_contents_and_names_only_its_source(
    db: Factory, sink: SMTPSink
) -> None:
    """One rule matching only HF papers: no table of contents (the email is its own summary),
    and the freshness line names HF alone, not the arXiv feed that fed nothing here."""
    text, html = parts(received_digest(db, sink, "upvotes:>=30"))
    assert "In this email" not in text and 'class="toc"' not in html
    assert "Hugging Face Daily Papers: checked" in text
    assert "arXiv: checked" not in text and "arXiv: checked" not in html


def test_the_preview_email_is_marked_as_a_preview(factory: Any, sink: SMTPSink) -> None:
    """"Send me a preview now" from the manage page: the received email says at its top, in
    both parts, that it is a preview and not a scheduled digest, and its heading says so."""
    from paperalerts.core.subscribers import subscriber_links
    from web_support import SECRET, WebEnv, add_subscriber, real_papers, seed_papers

    seed_papers(factory, real_papers(), datetime.now(UTC))
    sid = add_subscriber(factory, "y@example.org", rules=("title:diffusion",))
    env = WebEnv.start(factory, sink.url)
    page = subscriber_links("http://testserver", SECRET, sid, 1, now=datetime.now(UTC)).manage
    page = page.removeprefix("http://testserver")
    assert env.post_form(page, page + "/preview", {}).status_code == 200
    msg = sink.messages[-1].message
    text, html = parts(msg)
    assert str(msg["Subject"]).startswith("Preview: ")
    assert text.startswith("PREVIEW - you asked for this sample")
    assert "Preview: your daily papers" in text and "since your last digest" not in text
    assert "View online" not in text  # a preview has no online view to link to
    assert re.search(r'<div class="pv"[^>]*><b>Preview</b>', html)


def test_the_atom_feed_words_rules_as_the_emails_do(db: Factory, sink: SMTPSink) -> None:
    """The subscriber's Atom feed says why each paper matched with the same labels as the
    emails ("Matched: upvotes ≥ 30"), never the raw query or "X (X)"."""
    import feedparser
    from sqlalchemy import select

    from paperalerts.faces.web.feed import atom_feed

    received_digest(db, sink, *RULES)
    with db() as s:
        sub = s.scalars(select(m.Subscriber)).one()
        feed = feedparser.parse(atom_feed(s, sub, "https://a.example/f", "https://a.example", NOW))
    summaries = [e.summary for e in feed.entries]
    assert any(x.startswith("Matched: upvotes ≥ 30\n") for x in summaries)
    assert any(x.startswith("Matched: video & diffusion") for x in summaries)
    assert not any("upvotes:" in x or "(upvotes" in x for x in summaries)

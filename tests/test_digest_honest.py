"""The digest's footer agrees with what the email lists, in words subscribers know (issue 17,
item 2). Recorded HF feed pages are scraped (08-04 as the baseline, then 08-05), matched, and
scraped once more before the digest goes out, so the source's last scrape found 0 new papers
while the email lists papers from it; the digest is read as the SMTP sink received it, on SQLite
and PostgreSQL.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from conftest import fixture_file
from mail_fixtures import DELIVERY_CFG
from paperalerts.core.rules import parse, to_text
from paperalerts.edges.db import models as m
from paperalerts.edges.db import repo
from paperalerts.edges.db.engine import transaction
from paperalerts.edges.mailer import SMTPMailer
from paperalerts.pipeline import (
    dispatch_due_digests,
    match_new_events,
    scrape_source,
    send_delivery,
)
from smtp_sink import SMTPSink

Factory = sessionmaker[Session]
T0 = datetime(2026, 8, 4, 6, 0, tzinfo=UTC)
SEND = T0 + timedelta(days=1, hours=2)
HB = "hf_papers_rss_thirdparty/hfpapers_feed_huangboming_2026-08-{:02d}.xml"
CFG = DELIVERY_CFG


def scrape(db: Factory, sid: int, day: int, at: datetime) -> None:
    body = fixture_file(HB.format(day)).read_bytes()
    assert scrape_source(db, sid, fetcher=None, now=at, body=body).status == "ok"


def received(db: Factory, sink: SMTPSink, display: str) -> tuple[str, str]:
    with transaction(db) as s:
        src = m.Source(name="hfrss-fix", kind="feed", display_name=display,
                       url="https://raw.example.org/feed.xml")  # fmt: skip
        sub = m.Subscriber(email="ann@example.org", status="active", frequency="daily",
                           send_hour=8, next_digest_at=SEND - timedelta(minutes=5))  # fmt: skip
        s.add_all([src, sub])
        s.flush()
        q = "agent*"
        s.add(m.Rule(subscriber_id=sub.id, query=q, normalized=to_text(parse(q))))
        repo.bump_rules_version(s)
        sid = src.id
    scrape(db, sid, 4, T0)  # baseline
    scrape(db, sid, 5, T0 + timedelta(days=1))
    match_new_events(db, now=T0 + timedelta(days=1))
    scrape(db, sid, 5, T0 + timedelta(days=1, hours=1))  # the latest scrape: 0 new
    (did,) = dispatch_due_digests(db, CFG, now=SEND)
    mailer = SMTPMailer(sink.url, timeout=10)
    try:
        assert send_delivery(db, did, mailer=mailer, cfg=CFG, now=SEND).status == "sent"
    finally:
        mailer.close()
    (got,) = sink.messages
    text = got.message.get_body(("plain",))
    html = got.message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def test_freshness_line_counts_the_papers_this_email_lists(db: Factory, sink: SMTPSink) -> None:
    """The footer says how many of the listed papers came from the source (never "0 new" under
    papers from it, which the source's last scrape reported), by its display name; the
    internal name "hfrss-fix" appears nowhere in the email."""
    text, html = received(db, sink, "Hugging Face Daily Papers (RSS)")
    listed = len(set(re.findall(r"^\d+\. ", text, re.M)))
    papers = set(re.findall(r"arxiv\.org/abs/(\d{4}\.\d{4,5})", text))
    assert listed >= 2 and len(papers) == listed
    for part in (text, html):
        assert "Hugging Face Daily Papers (RSS): checked " in part
        assert f", {listed} papers in this email" in part
        assert " 0 new" not in part
        assert "hfrss-fix" not in part


def test_a_source_without_display_name_shows_one_derived_from_its_url(
    db: Factory, sink: SMTPSink
) -> None:
    """With no display name set, subscribers read the feed's host, not the internal name."""
    text, html = received(db, sink, "")
    for part in (text, html):
        assert "raw.example.org: checked " in part
        assert "hfrss-fix" not in part

"""Dispatch and delivery through a real SMTP server (aiosmtpd): every matched paper delivered
exactly once, through transient and permanent failures, crashes and duplicate hand-outs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
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
    sweep,
)
from smtp_sink import SMTPSink

Factory = sessionmaker[Session]
NOW = datetime(2024, 3, 12, 7, 30, tzinfo=UTC)
CFG = DeliveryConfig(
    base_url="https://alerts.example.org",
    secret="s" * 32,
    mail_from="paperalerts <alerts@example.org>",
    mail_domain="example.org",
    postal_address="1 Paper Lane, Example City",
)




def add_subscriber(
    db: Factory,
    email: str,
    *rules: str,
    frequency: str = "daily",
    due: datetime | None = NOW - timedelta(minutes=30),
) -> int:
    with transaction(db) as s:
        sub = m.Subscriber(
            email=email, status="active", frequency=frequency, send_hour=7, next_digest_at=due
        )
        s.add(sub)
        s.flush()
        for q in rules:
            s.add(m.Rule(subscriber_id=sub.id, query=q, normalized=to_text(parse(q)), name=q))
        repo.bump_rules_version(s)
        return sub.id


def ingest(db: Factory, date: str = "2024-03-12", at: datetime = NOW, mutate: Any = None) -> None:
    """Scrape a real HF API day into a backfill source, then match."""
    items = json.loads(
        fixture_file(f"hf_api_daily_papers/hf_api_daily_papers_{date}.json").read_bytes()
    )
    if mutate:
        mutate(items)
    with transaction(db) as s:
        src = repo.source_by_name(s, "hf-daily")
        if src is None:
            src = m.Source(name="hf-daily", kind="hf-api", url="https://e.org", backfill=True)
            s.add(src)
            s.flush()
        sid = src.id
    scrape_source(db, sid, fetcher=None, now=at, body=json.dumps(items).encode())
    match_new_events(db, now=at)


def paper_ids_in(raw: bytes) -> set[str]:
    """The HF paper pages linked from a received email's text and HTML parts (decoded)."""
    import email
    import email.policy
    import re

    msg = email.message_from_bytes(raw, policy=email.policy.default)
    found: set[str] = set()
    for part in msg.walk():
        if part.get_content_type() in ("text/plain", "text/html"):
            found |= set(re.findall(r"huggingface\.co/papers/(\d{4}\.\d{5})", part.get_content()))
    return found


def deliveries(db: Factory) -> list[m.Delivery]:
    with db() as s:
        return list(s.scalars(select(m.Delivery).order_by(m.Delivery.id)))


def test_digest_carries_exactly_the_matched_papers(
    db: Factory, sink: SMTPSink, mailer: SMTPMailer
) -> None:
    """Scrape -> match -> dispatch -> SMTP: the digest lists exactly the matched papers, once."""
    add_subscriber(db, "ann@example.org", "video")
    ingest(db)
    ids = dispatch_due_digests(db, CFG, now=NOW)
    assert len(ids) == 1
    out = send_delivery(db, ids[0], mailer=mailer, cfg=CFG, now=NOW)
    assert out.status == "sent", out.detail
    assert len(sink.messages) == 1
    msg = sink.messages[0].message
    # Titles of 2024-03-12 with "video" in title or abstract (read from the fixture).
    items = json.loads(
        fixture_file("hf_api_daily_papers/hf_api_daily_papers_2024-03-12.json").read_bytes()
    )
    expected = {
        i["paper"]["id"]
        for i in items
        if "video" in (i["paper"]["title"] + i["paper"]["summary"]).lower()
    }
    assert expected and paper_ids_in(sink.messages[0].data) == expected
    assert msg["To"] == "ann@example.org"
    assert msg["Message-ID"] == deliveries(db)[0].message_id
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    d = deliveries(db)[0]
    assert (d.status, d.attempts, d.sent_at) == ("sent", 1, NOW)


def test_same_delivery_handed_out_twice_sends_once(
    db: Factory, sink: SMTPSink, mailer: SMTPMailer
) -> None:
    """The claim lets only one send; a second hand-out of the same id is skipped."""
    add_subscriber(db, "ann@example.org", "model")
    ingest(db)
    (did,) = dispatch_due_digests(db, CFG, now=NOW)
    assert send_delivery(db, did, mailer=mailer, cfg=CFG, now=NOW).status == "sent"
    assert send_delivery(db, did, mailer=mailer, cfg=CFG, now=NOW).status == "skipped"
    assert len(sink.messages) == 1


def test_dispatch_twice_in_one_period_creates_one_delivery(db: Factory) -> None:
    """Dispatch is idempotent per period; matches are attached to exactly one delivery."""
    add_subscriber(db, "ann@example.org", "model")
    ingest(db)
    assert len(dispatch_due_digests(db, CFG, now=NOW)) == 1
    assert dispatch_due_digests(db, CFG, now=NOW + timedelta(minutes=1)) == []
    with db() as s:
        assert all(x.delivery_id is not None for x in s.scalars(select(m.Match)))


def test_451_then_250_retries_with_backoff_and_sends_once(
    db: Factory, sink: SMTPSink, mailer: SMTPMailer
) -> None:
    """A 451 queues the row again with a backoff; the sweep hands it out when due; one message."""
    add_subscriber(db, "ann@example.org", "model")
    ingest(db)
    (did,) = dispatch_due_digests(db, CFG, now=NOW)
    sink.fail_next("DATA", 1, "451 4.3.0 try again later")
    out = send_delivery(db, did, mailer=mailer, cfg=CFG, now=NOW)
    assert out.status == "retry" and out.retry_at is not None
    assert out.retry_at >= NOW + CFG.backoff_base
    assert sweep(db, CFG, now=NOW) == []  # not due yet
    assert sweep(db, CFG, now=out.retry_at) == [did]
    assert send_delivery(db, did, mailer=mailer, cfg=CFG, now=out.retry_at).status == "sent"
    assert len(sink.messages) == 1
    assert deliveries(db)[0].attempts == 2


def test_smtp_server_down_then_back(db: Factory, sink: SMTPSink, mailer: SMTPMailer) -> None:
    """Connection refused is transient; after the server returns the digest goes out once."""
    add_subscriber(db, "ann@example.org", "model")
    ingest(db)
    (did,) = dispatch_due_digests(db, CFG, now=NOW)
    sink.stop()
    out = send_delivery(db, did, mailer=mailer, cfg=CFG, now=NOW)
    assert out.status == "retry"
    sink.restart()
    later = out.retry_at or NOW
    assert send_delivery(db, did, mailer=mailer, cfg=CFG, now=later).status == "sent"
    assert len(sink.messages) == 1


def test_550_for_one_address_fails_it_and_bounces_others_go_through(
    db: Factory, sink: SMTPSink, mailer: SMTPMailer
) -> None:
    """5.1.1 fails that delivery permanently and adds to its bounce score; the other is sent."""
    bad = add_subscriber(db, "gone@example.org", "model")
    add_subscriber(db, "ann@example.org", "model")
    ingest(db)
    sink.reject("gone@example.org", "550 5.1.1 no such user")
    ids = dispatch_due_digests(db, CFG, now=NOW)
    outs = {
        o.delivery_id: o
        for o in (send_delivery(db, i, mailer=mailer, cfg=CFG, now=NOW) for i in ids)
    }
    with db() as s:
        by_sub = {d.subscriber_id: d for d in s.scalars(select(m.Delivery))}
        assert outs[by_sub[bad].id].status == "failed"
        assert s.get_one(m.Subscriber, bad).bounce_score == 1
    assert [list(r.rcpt_tos) for r in sink.messages] == [["ann@example.org"]]


def test_bounce_threshold_suspends_the_subscriber(
    db: Factory, sink: SMTPSink, mailer: SMTPMailer
) -> None:
    """At the bounce threshold the subscriber is marked bounced and gets nothing more."""
    bad = add_subscriber(db, "gone@example.org", "model")
    with transaction(db) as s:
        s.get_one(m.Subscriber, bad).bounce_score = CFG.bounce_threshold - 1
    ingest(db)
    sink.reject("gone@example.org", "550 5.1.1 no such user")
    (did,) = dispatch_due_digests(db, CFG, now=NOW)
    send_delivery(db, did, mailer=mailer, cfg=CFG, now=NOW)
    with db() as s:
        assert s.get_one(m.Subscriber, bad).status == "bounced"


def test_worker_dying_mid_send_is_recovered_after_the_lease(
    db: Factory, sink: SMTPSink, mailer: SMTPMailer
) -> None:
    """A row left 'sending' by a dead worker is handed out again once its lease runs out."""
    from paperalerts.edges.db.deliveries import claim

    add_subscriber(db, "ann@example.org", "model")
    ingest(db)
    (did,) = dispatch_due_digests(db, CFG, now=NOW)
    # The worker claimed it, then died.
    assert claim(db, did, lease=CFG.lease, max_attempts=CFG.max_attempts, clock=lambda: NOW)
    assert send_delivery(db, did, mailer=mailer, cfg=CFG, now=NOW).status == "skipped"
    assert sweep(db, CFG, now=NOW + timedelta(minutes=1)) == []
    later = NOW + CFG.lease + timedelta(seconds=1)
    assert sweep(db, CFG, now=later) == [did]
    assert send_delivery(db, did, mailer=mailer, cfg=CFG, now=later).status == "sent"
    assert len(sink.messages) == 1


def test_unsubscribed_before_sending_gets_nothing(
    db: Factory, sink: SMTPSink, mailer: SMTPMailer
) -> None:
    """Unsubscribe takes effect at once: a queued digest is skipped, not sent."""
    sub = add_subscriber(db, "ann@example.org", "model")
    ingest(db)
    (did,) = dispatch_due_digests(db, CFG, now=NOW)
    with transaction(db) as s:
        s.get_one(m.Subscriber, sub).status = "unsubscribed"
    out = send_delivery(db, did, mailer=mailer, cfg=CFG, now=NOW)
    assert out.status == "skipped" and "unsubscribed" in out.detail
    assert sink.messages == []


def test_no_email_on_a_day_with_nothing_matched(db: Factory) -> None:
    """No match, no digest; the next send time still moves on a day."""
    sub = add_subscriber(db, "ann@example.org", "xylophone")
    ingest(db)
    assert dispatch_due_digests(db, CFG, now=NOW) == []
    with db() as s:
        nxt = s.get_one(m.Subscriber, sub).next_digest_at
    assert nxt == datetime(2024, 3, 13, 7, 0, tzinfo=UTC)
    empty = DeliveryConfig(**{**CFG.__dict__, "send_empty": True})
    with transaction(db) as s:
        s.get_one(m.Subscriber, sub).next_digest_at = NOW
    assert len(dispatch_due_digests(db, empty, now=NOW)) == 1


def test_papers_matched_later_go_in_the_next_digest_not_twice(
    db: Factory, sink: SMTPSink, mailer: SMTPMailer
) -> None:
    """Day 1's digest has day 1's papers; day 2's has only day 2's new ones."""
    add_subscriber(db, "ann@example.org", "model")
    ingest(db)
    (d1,) = dispatch_due_digests(db, CFG, now=NOW)
    send_delivery(db, d1, mailer=mailer, cfg=CFG, now=NOW)
    day2 = NOW + timedelta(days=1)
    ingest(db, "2024-03-13", at=day2)
    (d2,) = dispatch_due_digests(db, CFG, now=day2)
    send_delivery(db, d2, mailer=mailer, cfg=CFG, now=day2)
    first, second = (paper_ids_in(r.data) for r in sink.messages)
    assert first and second and not (first & second)
    assert all(p.startswith("2403.0") for p in first | second)


def test_instant_subscriber_gets_one_alert_per_scrape(
    db: Factory, sink: SMTPSink, mailer: SMTPMailer
) -> None:
    """Instant: one email per scrape that found matches, not one per paper."""
    add_subscriber(db, "ann@example.org", "model", frequency="instant", due=None)
    ingest(db)
    ids = dispatch_due_digests(db, CFG, now=NOW)
    assert len(ids) == 1
    assert send_delivery(db, ids[0], mailer=mailer, cfg=CFG, now=NOW).status == "sent"
    assert deliveries(db)[0].kind == "alert"
    assert len(paper_ids_in(sink.messages[0].data)) > 1

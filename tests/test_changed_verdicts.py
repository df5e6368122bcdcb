"""An update is news only where a rule's verdict turned (issue 17, item 1).

The recorded HF feed of 2026-08-01 and 2026-08-02 (a weekend: the same 38 papers, 24 with more
upvotes) is served by a local HTTP server and scraped twice: the first scrape is the baseline,
the second gives "0 new, 24 updated". A subscriber whose broad rule matched those papers all
along gets none of them; a threshold rule fires only for the papers that crossed it; a corrected
abstract that now holds the word reaches the subscriber. Received messages are read at the SMTP
sink; SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from conftest import fixture_file
from mail_fixtures import DELIVERY_CFG
from paperalerts.core.rules import parse, to_text
from paperalerts.edges.db import models as m
from paperalerts.edges.db import repo
from paperalerts.edges.db.engine import transaction
from paperalerts.edges.fetch import Fetcher
from paperalerts.edges.mailer import SMTPMailer
from paperalerts.pipeline import (
    dispatch_due_digests,
    match_new_events,
    scrape_source,
    send_delivery,
)
from smtp_sink import SMTPSink

Factory = sessionmaker[Session]
T0 = datetime(2026, 8, 1, 6, 0, tzinfo=UTC)
T1 = T0 + timedelta(days=1)
HB = "hf_papers_rss_thirdparty/hfpapers_feed_huangboming_2026-08-{:02d}.xml"
UPVOTES = re.compile(
    r"<link>https://arxiv.org/abs/([\d.]+)</link>\s*<description>.*?Upvotes:&lt;/b&gt; (\d+)", re.S
)
CFG = DELIVERY_CFG
BROAD = "model OR learning OR agent*"


def subscriber(db: Factory, email: str, *rules: str) -> int:
    with transaction(db) as s:
        sub = m.Subscriber(email=email, status="active", frequency="daily", send_hour=7,
                           next_digest_at=T1 - timedelta(minutes=5))  # fmt: skip
        s.add(sub)
        s.flush()
        for q in rules:
            s.add(m.Rule(subscriber_id=sub.id, query=q, normalized=to_text(parse(q))))
        repo.bump_rules_version(s)
        return sub.id


def upvotes(day: int) -> dict[str, int]:
    return {k: int(v) for k, v in UPVOTES.findall(fixture_file(HB.format(day)).read_text())}


def two_served_days(db: Factory, static_server: str) -> Any:
    """Baseline scrape of 08-01, then 08-02, both fetched over HTTP; matching after each."""
    with transaction(db) as s:
        src = m.Source(name="hb", kind="feed", url=f"{static_server}/{HB.format(1)}")
        s.add(src)
        s.flush()
        sid = src.id
    with Fetcher(
        allow_private=True, retries=0, timeout=5, backoff=0, max_bytes=10**7, max_retry_after=0
    ) as f:
        first = scrape_source(db, sid, fetcher=f, now=T0)
        assert first.status == "ok" and first.baseline
        match_new_events(db, now=T0)
        with transaction(db) as s:
            s.execute(update(m.Source).values(
                url=f"{static_server}/{HB.format(2)}", etag=None, last_modified=None
            ))
        second = scrape_source(db, sid, fetcher=f, now=T1)
    match_new_events(db, now=T1)
    return second


def matched(db: Factory, sub: int) -> set[str]:
    with db() as s:
        q = select(m.Match.paper_id).where(m.Match.subscriber_id == sub)
        return set(s.scalars(q))


def send_all(db: Factory, sink: SMTPSink) -> dict[str, str]:
    """Every due digest sent through the sink; recipient -> text part."""
    mailer = SMTPMailer(sink.url, timeout=10)
    try:
        for did in dispatch_due_digests(db, CFG, now=T1):
            assert send_delivery(db, did, mailer=mailer, cfg=CFG, now=T1).status == "sent"
    finally:
        mailer.close()
    out = {}
    for got in sink.messages:
        body = got.message.get_body(("plain",))
        assert body is not None
        out[str(got.message["To"])] = body.get_content()
    return out


def test_relisted_baseline_papers_with_more_upvotes_reach_nobody(
    db: Factory, static_server: str, sink: SMTPSink
) -> None:
    """"0 new, 24 updated": a subscriber with `model OR learning OR agent*`, whose rule matched
    those papers at the baseline already, gets none of them and no email."""
    ann = subscriber(db, "ann@example.org", BROAD)
    out = two_served_days(db, static_server)
    assert out.new == () and out.updated == 24
    assert matched(db, ann) == set()
    assert send_all(db, sink) == {}


def test_threshold_rule_fires_only_for_papers_that_crossed_it(
    db: Factory, static_server: str, sink: SMTPSink
) -> None:
    """`upvotes:>=10` fires for the three papers that went from below 10 to 10 or more, not for
    the many already above 10 at the baseline; the received digest lists exactly those three."""
    bob = subscriber(db, "bob@example.org", "upvotes:>=10")
    subscriber(db, "ann@example.org", BROAD)
    two_served_days(db, static_server)
    before, after = upvotes(1), upvotes(2)
    crossed = {p for p in before if before[p] < 10 <= after[p]}
    assert len(crossed) == 3 and sum(1 for v in before.values() if v >= 10) > 10
    assert matched(db, bob) == crossed
    got = send_all(db, sink)
    assert list(got) == ["bob@example.org"]
    listed = set(re.findall(r"arxiv\.org/abs/([\d.]+)", got["bob@example.org"]))
    assert listed == crossed


def hf_day() -> list[dict[str, Any]]:
    rel = "hf_api_daily_papers/hf_api_daily_papers_2024-03-12.json"
    return list(json.loads(fixture_file(rel).read_bytes()))


def scrape_items(db: Factory, sid: int, items: list[dict[str, Any]], at: datetime) -> None:
    out = scrape_source(db, sid, fetcher=None, now=at, body=json.dumps(items).encode())
    assert out.status == "ok", out.reason


def test_corrected_abstract_that_now_holds_the_word_reaches_the_subscriber(db: Factory) -> None:
    """A paper whose corrected abstract now says "zebrafish" matches `zebrafish` once; the same
    update does not re-send a paper the subscriber's other rule matched all along."""
    with transaction(db) as s:
        src = m.Source(name="hf-daily", kind="hf-api", url="https://e.org/api")
        s.add(src)
        s.flush()
        sid = src.id
    ann = subscriber(db, "ann@example.org", "zebrafish", '"language model"')
    items = hf_day()
    scrape_items(db, sid, items, T0)  # baseline
    stealing = next(i for i in items if i["paper"]["id"] == "2403.06634")
    stealing["paper"]["summary"] += " We also test it on zebrafish."
    stealing["summary"] = stealing["paper"]["summary"]
    scrape_items(db, sid, items, T0 + timedelta(hours=1))
    out = match_new_events(db, now=T0 + timedelta(hours=1))
    assert out.events == 1
    with db() as s:
        row = s.scalars(select(m.Match).where(m.Match.subscriber_id == ann)).one()
    assert row.paper_id == "2403.06634"
    assert [r["terms"] for r in row.explanation["rules"]] == [["zebrafish"]]


def test_events_stored_before_the_previous_values_are_rebuilt_from_changes(db: Factory) -> None:
    """An update event written before events kept previous values (previous is NULL) is judged
    on the values its `changes` record: a paper that was above the threshold already stays out,
    one that crossed comes in."""
    with transaction(db) as s:
        src = m.Source(name="hf-daily", kind="hf-api", url="https://e.org/api")
        s.add(src)
        s.flush()
        sid = src.id
    ann = subscriber(db, "ann@example.org", "upvotes:>=40")
    items = hf_day()
    scrape_items(db, sid, items, T0)
    ups = {i["paper"]["id"]: i["paper"]["upvotes"] for i in items}
    for i in items:
        i["paper"]["upvotes"] += 30
    scrape_items(db, sid, items, T0 + timedelta(hours=1))
    with transaction(db) as s:
        s.execute(update(m.PaperEvent).values(previous=None))
    match_new_events(db, now=T0 + timedelta(hours=1))
    assert matched(db, ann) == {p for p, v in ups.items() if v < 40 <= v + 30}
    assert len(matched(db, ann)) == 5 and "2403.06634" not in matched(db, ann)  # 63 -> 93

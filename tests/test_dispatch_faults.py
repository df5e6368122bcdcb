"""Issue 21, items 1 and 2 under their faults, on SQLite and PostgreSQL through a real SMTP sink
counting by Message-ID: the send hour never skips while matching is behind (bounded), and a relay
outage delays deliveries but loses none (retry by elapsed time, the circuit breaker, a failed
delivery's papers back to the next digest)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.edges.config import Settings
from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.edges.mailer import SMTPMailer
from paperalerts.faces.step_config import delivery_config
from paperalerts.pipeline import (
    DeliveryConfig,
    dispatch_due_digests,
    match_new_events,
    relay_gate,
    send_due,
)
from paperalerts.pipeline.health import read_report
from smtp_sink import SMTPSink
from test_deliver import CFG, NOW, add_subscriber, deliveries, ingest, paper_ids_in
from test_delivery_lifecycle import scrape_only

Factory = sessionmaker[Session]
DUE = NOW - timedelta(minutes=30)  # add_subscriber's default send time


def copies(sink: SMTPSink) -> Counter[str]:
    """How many times the sink received each Message-ID (repeats counted)."""
    return Counter(str(r.message["Message-ID"]) for r in list(sink.messages))


def scrape_before_send_time(db: Factory) -> None:
    """A real HF day scraped (not matched), its events dated ten minutes before the send time."""
    scrape_only(db)
    with transaction(db) as s:
        s.execute(update(m.PaperEvent).values(at=DUE - timedelta(minutes=10)))


def next_digest(db: Factory, sub_id: int) -> object:
    with db() as s:
        return s.get_one(m.Subscriber, sub_id).next_digest_at


def test_send_hour_tick_before_matching_waits_and_sends_that_days_digest(
    db: Factory, sink: SMTPSink, mailer: object
) -> None:
    """Dispatch at the send hour while the day's scrape is still unmatched moves nobody to
    tomorrow: the subscribers stay due, and once matching has run the next dispatch sends that
    day's digest (today's period key) with every matched paper, once."""
    subs = [add_subscriber(db, f"r{i}@example.org", w) for i, w in enumerate(["model", "video"])]
    scrape_before_send_time(db)  # matching has not run yet
    assert dispatch_due_digests(db, CFG, now=NOW) == []
    assert [next_digest(db, sid) for sid in subs] == [DUE, DUE]  # held, not skipped
    match_new_events(db, now=NOW + timedelta(minutes=2))
    ids = dispatch_due_digests(db, CFG, now=NOW + timedelta(minutes=3))
    assert len(ids) == 2
    outs = send_due(db, ids, mailer=mailer, cfg=CFG, clock=lambda: NOW + timedelta(minutes=4))  # type: ignore[arg-type]
    assert {o.status for o in outs} == {"sent"}
    assert {d.period_key for d in deliveries(db)} == {"2024-03-12"}
    with db() as s:
        wanted = Counter(s.scalars(select(m.Match.subscriber_id)))
    got = [paper_ids_in(r.data) for r in sink.messages]
    assert sorted(len(p) for p in got) == sorted(wanted.values())
    assert set(copies(sink).values()) == {1}
    assert all(next_digest(db, sid) > NOW for sid in subs)  # type: ignore[operator]


def test_a_stalled_matcher_holds_digests_only_for_the_wait_bound(
    db: Factory, sink: SMTPSink, mailer: object
) -> None:
    """A matcher that never catches up holds a due digest for at most `match_wait` past its
    send time: then dispatch goes on (here, nothing was matched: the next time moves on), and
    health shows the ``matching`` incident naming the lag."""
    sid = add_subscriber(db, "ann@example.org", "model")
    scrape_before_send_time(db)
    held = dispatch_due_digests(db, CFG, now=DUE + CFG.match_wait - timedelta(seconds=1))
    assert held == [] and next_digest(db, sid) == DUE
    later = DUE + CFG.match_wait + timedelta(seconds=1)
    assert dispatch_due_digests(db, CFG, now=later) == []  # nothing matched, nothing to send
    assert next_digest(db, sid) > later  # type: ignore[operator]
    report = read_report(
        db, later, stale_after=timedelta(days=1), stuck_after=timedelta(days=1),
        match_wait=CFG.match_wait,
    )  # fmt: skip
    kinds = {i.kind: i for i in report.incidents}
    assert "matching" in kinds, report.incidents
    assert "unmatched" in kinds["matching"].detail


class Clock:
    """Simulated time the steps read (a 2-hour outage in seconds of real time)."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def run_minutes(db: Factory, mailer: object, cfg: DeliveryConfig, clock: Clock, minutes: int,
                ids: list[int] | None = None) -> None:
    """The scheduler's minute, `minutes` times: the sweep's leftovers (and `ids` first) sent."""
    for _ in range(minutes):
        send_due(db, ids or [], mailer=mailer, cfg=cfg, clock=clock)  # type: ignore[arg-type]
        ids = None
        clock.at += timedelta(minutes=1)


def sent_pairs(db: Factory) -> set[tuple[int, str]]:
    """(subscriber, paper) of every match the database says was sent."""
    with db() as s:
        q = (
            select(m.Match.subscriber_id, m.Match.paper_id)
            .join(m.Delivery, m.Delivery.id == m.Match.delivery_id)
            .where(m.Delivery.status == "sent")
        )
        return {(a, b) for a, b in s.execute(q)}


def all_pairs(db: Factory) -> set[tuple[int, str]]:
    with db() as s:
        return {(a, b) for a, b in s.execute(select(m.Match.subscriber_id, m.Match.paper_id))}


def test_two_hour_relay_outage_at_defaults_delays_every_digest_and_loses_none(
    db: Factory, sink: SMTPSink
) -> None:
    """The relay refuses connections for 2 hours (simulated clock, default settings): the
    breaker opens and pauses sending instead of spending each delivery's attempts, health shows
    the ``relay`` incident, and once the relay is back every digest arrives, once, none failed."""
    relay_gate.forget()
    cfg = delivery_config(Settings(secret_key="s" * 32, mail_from=CFG.mail_from))
    for i in range(40):
        add_subscriber(db, f"r{i}@example.org", ["model", "video", "language", "data"][i % 4])
    ingest(db)
    clock = Clock(NOW)
    ids = dispatch_due_digests(db, cfg, now=clock())
    assert len(ids) == 40
    sink.stop()
    mailer = SMTPMailer(sink.url, timeout=2)
    try:
        run_minutes(db, mailer, cfg, clock, 120, ids)
        report = read_report(db, clock(), stale_after=timedelta(days=1),
                             stuck_after=timedelta(days=1))  # fmt: skip
        assert "relay" in {i.kind for i in report.incidents}
        with db() as s:  # the breaker's threshold, then one probe a pause: not 40 x 8 attempts
            spent = sum(s.scalars(select(m.Delivery.attempts)))
        assert spent <= 40 + cfg.breaker_failures + 120 // 5, spent
        assert statuses(db) == Counter({"queued": 40})
        sink.start()
        run_minutes(db, mailer, cfg, clock, 45)
    finally:
        mailer.close()
    assert statuses(db) == Counter({"sent": 40})
    assert len(copies(sink)) == 40 and set(copies(sink).values()) == {1}
    assert sent_pairs(db) == all_pairs(db)


def statuses(db: Factory) -> Counter[str]:
    with db() as s:
        return Counter(s.scalars(select(m.Delivery.status)))


def test_a_delivery_failing_past_the_retry_window_hands_its_papers_to_the_next_digest(
    db: Factory, sink: SMTPSink, mailer: object
) -> None:
    """A relay answering 451 for longer than the retry window fails the delivery, and its
    papers go back to the reader: the next day's digest carries them, each paper once."""
    relay_gate.forget()
    cfg = replace(CFG, retry_window=timedelta(hours=2), breaker_failures=0)
    sid = add_subscriber(db, "ann@example.org", "model")
    ingest(db)
    wanted = all_pairs(db)
    clock = Clock(NOW)
    (did,) = dispatch_due_digests(db, cfg, now=clock())
    with transaction(db) as s:  # made at the simulated now (the window counts from creation)
        s.execute(update(m.Delivery).values(created_at=clock()))
    sink.fail_next("MAIL", 10_000, "451 4.3.0 try again later")
    run_minutes(db, mailer, cfg, clock, 150, [did])
    with db() as s:
        d = s.get_one(m.Delivery, did)
        assert d.status == "failed" and "back to the next digest" in (d.last_error or "")
        assert s.scalars(select(m.Match).where(m.Match.delivery_id == did)).first() is None
    assert not sink.messages
    sink.script.replies["MAIL"].clear()
    clock.at = next_digest(db, sid)  # type: ignore[assignment]
    ids = dispatch_due_digests(db, cfg, now=clock())
    assert len(ids) == 1 and ids[0] != did
    run_minutes(db, mailer, cfg, clock, 2, ids)
    assert sent_pairs(db) == wanted
    got = [paper_ids_in(r.data) for r in sink.messages]
    assert len(got) == 1 and len(got[0]) == len(wanted)

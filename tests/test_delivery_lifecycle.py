"""The delivery state machine under the races a reviewer found (issue 10), on SQLite and
PostgreSQL through a real SMTP server: a scrape's matches split across batches are all delivered,
once; a worker whose lease was taken over changes nothing; leases are counted from when each
send claims its row, not from the start of the run."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from conftest import fixture_file
from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.edges.mailer import SMTPMailer
from paperalerts.errors import PermanentDeliveryError, TransientDeliveryError
from paperalerts.pipeline import (
    dispatch_due_digests,
    match_new_events,
    scrape_source,
    send_delivery,
    send_due,
    sweep,
)
from smtp_sink import SMTPSink
from test_deliver import CFG, NOW, add_subscriber, deliveries, ingest, paper_ids_in

Factory = sessionmaker[Session]


def scrape_only(db: Factory, date: str = "2024-03-12", source: str = "hf-daily") -> None:
    """Scrape a real HF API day into a new backfill source without matching it."""
    body = fixture_file(f"hf_api_daily_papers/hf_api_daily_papers_{date}.json").read_bytes()
    with transaction(db) as s:
        src = m.Source(name=source, kind="hf-api", url="https://e.org", backfill=True)
        s.add(src)
        s.flush()
        sid = src.id
    scrape_source(db, sid, fetcher=None, now=NOW, body=body)


def copies(sink: SMTPSink) -> Counter[str]:
    """How many times the sink received each Message-ID (repeats counted)."""
    return Counter(str(r.message["Message-ID"]) for r in list(sink.messages))


def test_instant_scrape_split_across_batches_delivers_every_paper_once(
    db: Factory, sink: SMTPSink, mailer: SMTPMailer
) -> None:
    """One scrape matched in several batches, with dispatches (and sends) in between: every
    matched paper reaches the instant subscriber exactly once; no match is left undelivered."""
    add_subscriber(db, "ann@example.org", "model", frequency="instant", due=None)
    scrape_only(db)
    step, handed = 0, set()
    while match_new_events(db, now=NOW, batch_size=2, max_batches=1).batches:
        for did in dispatch_due_digests(db, CFG, now=NOW):
            handed.add(did)
            if step % 2:  # every other batch is sent at once; the rest wait for the next batch
                assert send_delivery(db, did, mailer=mailer, cfg=CFG, now=NOW).status == "sent"
        step += 1
    for did in sorted(handed):  # what is left unsent (a done one is merely skipped)
        send_delivery(db, did, mailer=mailer, cfg=CFG, now=NOW)
    assert step > 2, "the scrape must take several batches for this test to mean anything"
    with db() as s:
        matched = set(s.scalars(select(m.Match.paper_id)))
        undelivered = s.scalars(select(m.Match.id).where(m.Match.delivery_id.is_(None))).all()
    assert matched and not undelivered
    got = Counter(p for r in sink.messages for p in paper_ids_in(r.data))
    assert set(got) == matched
    assert set(got.values()) == {1}, "a paper arrived more than once"
    assert all(d.status == "sent" for d in deliveries(db))
    assert len(sink.messages) < step  # unsent alerts took the next batch's papers along


class LateWorker:
    """Worker A's mailer: while A is inside its SMTP call, its lease runs out and worker B
    re-claims and sends the same delivery; then A's call ends with `late` (a 451, a 550, or
    A's own copy going out)."""

    def __init__(self, db: Factory, real: SMTPMailer, late: str) -> None:
        self.db, self.real, self.late = db, real, late
        self.b_status = ""

    def send(self, msg: EmailMessage) -> str:
        later = NOW + CFG.lease + timedelta(seconds=1)
        self.b_status = send_delivery(self.db, 1, mailer=self.real, cfg=CFG, now=later).status
        if self.late == "451":
            raise TransientDeliveryError("451 4.3.0 try again later")
        if self.late == "550":
            raise PermanentDeliveryError("550 5.1.1 no such user", code=550, enhanced="5.1.1")
        return self.real.send(msg)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("late", ["451", "550", "sent"])
def test_worker_whose_lease_was_taken_over_changes_nothing(
    db: Factory, sink: SMTPSink, mailer: SMTPMailer, late: str
) -> None:
    """A outlives its lease, B re-claims and sends; A's late 451, 550 or success must not turn
    the sent row back to queued or failed, nor touch the bounce score: no later send happens."""
    sub = add_subscriber(db, "ann@example.org", "model")
    ingest(db)
    (did,) = dispatch_due_digests(db, CFG, now=NOW)
    assert did == 1
    a = LateWorker(db, mailer, late)
    out = send_delivery(db, did, mailer=a, cfg=CFG, now=NOW)
    assert a.b_status == "sent"
    assert out.status != "sent", "A must learn it lost the lease"
    (d,) = deliveries(db)
    assert d.status == "sent"
    much_later = NOW + timedelta(days=1)
    for i in sweep(db, CFG, now=much_later):
        send_delivery(db, i, mailer=mailer, cfg=CFG, now=much_later)
    (d,) = deliveries(db)
    assert (d.status, d.attempts) == ("sent", 2)
    want = 2 if late == "sent" else 1  # A's own late copy is the one duplicate no fence can stop
    assert copies(sink) == Counter({str(d.message_id): want})
    with db() as s:
        assert s.get_one(m.Subscriber, sub).bounce_score == 0


class SlowMailer:
    """A real SMTP mailer that takes `delay` per message and, just before sending, asks a
    concurrent sweep (at the wall clock) which deliveries it would hand out again."""

    def __init__(self, db: Factory, real: SMTPMailer, delay: float, lease: timedelta) -> None:
        self.db, self.real, self.delay = db, real, delay
        self.cfg = CFG.__class__(**{**CFG.__dict__, "lease": lease})
        self.seen_expired: list[int] = []

    def send(self, msg: EmailMessage) -> str:
        import time

        time.sleep(self.delay)
        self.seen_expired += sweep(self.db, self.cfg, now=datetime.now(UTC))
        return self.real.send(msg)

    def close(self) -> None:
        pass


def test_send_due_leases_start_at_each_claim_not_at_the_run(
    db: Factory, sink: SMTPSink, mailer: SMTPMailer
) -> None:
    """send_due over several slow sends: no delivery in flight ever looks expired to a
    concurrent sweep, because each claim's lease runs from its own clock reading."""
    for i in range(5):
        add_subscriber(db, f"s{i}@example.org", "model")
    ingest(db)
    # The run (5 x 1.2 s) outlasts a lease (4 s); each send (1.2 s + render) does not.
    slow = SlowMailer(db, mailer, 1.2, timedelta(seconds=4))
    ids = dispatch_due_digests(db, CFG, now=datetime.now(UTC))
    assert len(ids) == 5
    outs = send_due(db, ids, mailer=slow, cfg=slow.cfg, clock=lambda: datetime.now(UTC))
    assert [o.status for o in outs] == ["sent"] * 5
    assert slow.seen_expired == [], "a sweep would have handed out a delivery still being sent"
    assert sum(copies(sink).values()) == 5


def test_send_hour_moved_after_todays_digest_does_not_defer_new_papers_a_day(
    db: Factory, sink: SMTPSink, mailer: SMTPMailer
) -> None:
    """Today's 07:00 digest went out; the subscriber then moves the hour to 20:00: papers
    matched since arrive at 20:00 today (a second digest for the day), not tomorrow."""
    from paperalerts.core.schedule import next_digest_at

    sub = add_subscriber(db, "ann@example.org", "model")
    ingest(db)
    (first,) = dispatch_due_digests(db, CFG, now=NOW)
    assert send_delivery(db, first, mailer=mailer, cfg=CFG, now=NOW).status == "sent"
    ten = NOW.replace(hour=10)
    with transaction(db) as s:  # what every preferences writer does
        row = s.get_one(m.Subscriber, sub)
        row.send_hour = 20
        row.next_digest_at = next_digest_at("daily", 20, 0, "UTC", ten)
    ingest(db, "2024-03-13", at=ten)
    eight_pm = NOW.replace(hour=20)
    ids = dispatch_due_digests(db, CFG, now=eight_pm)
    assert len(ids) == 1, "the papers matched since the morning digest were deferred"
    assert send_delivery(db, ids[0], mailer=mailer, cfg=CFG, now=eight_pm).status == "sent"
    morning, evening = (paper_ids_in(r.data) for r in sink.messages)
    assert morning and evening and not (morning & evening)
    with db() as s:
        assert not s.scalars(select(m.Match.id).where(m.Match.delivery_id.is_(None))).all()
        assert s.get_one(m.Subscriber, sub).next_digest_at == datetime(2024, 3, 13, 20, tzinfo=UTC)


def test_racing_matchers_dispatchers_and_senders_lose_no_instant_paper(
    db: Factory, sink: SMTPSink
) -> None:
    """Three threads each matching one small batch then dispatching, while two threads send
    whatever is queued: every matched paper reaches each instant subscriber exactly once, and no
    delivery is opened empty (a dispatcher that lost the race for the matches opens nothing)."""
    import threading

    for i in range(3):
        add_subscriber(db, f"i{i}@example.org", "model", frequency="instant", due=None)
    scrape_only(db)
    scrape_only(db, "2024-03-13", source="hf-daily-2")
    stop, errors = threading.Event(), []

    def matcher() -> None:
        try:
            while match_new_events(db, now=NOW, batch_size=2, max_batches=1).batches:
                dispatch_due_digests(db, CFG, now=NOW)
        except BaseException as e:
            errors.append(e)

    def sender() -> None:
        mailer = SMTPMailer(sink.url, timeout=5)
        try:
            while not stop.is_set():
                with db() as s:
                    queued = s.scalars(select(m.Delivery.id).where(m.Delivery.status == "queued"))
                    ids = list(queued)
                for did in ids:
                    send_delivery(db, did, mailer=mailer, cfg=CFG, now=NOW)
        except BaseException as e:
            errors.append(e)
        finally:
            mailer.close()

    senders = [threading.Thread(target=sender) for _ in range(2)]
    matchers = [threading.Thread(target=matcher) for _ in range(3)]
    for t in senders + matchers:
        t.start()
    for t in matchers:
        t.join(120)
    dispatch_due_digests(db, CFG, now=NOW)
    time.sleep(0.5)
    stop.set()
    for t in senders:
        t.join(60)
    assert not errors, errors
    with db() as s:
        want = Counter(
            (a, p)
            for a, p in s.execute(
                select(m.Subscriber.email, m.Match.paper_id).join(
                    m.Subscriber, m.Subscriber.id == m.Match.subscriber_id
                )
            )
        )
        empty = s.scalars(
            select(m.Delivery.id).where(~m.Delivery.id.in_(select(m.Match.delivery_id)
                                                            .where(m.Match.delivery_id.is_not(None))))
        ).all()  # fmt: skip
    assert not empty, f"deliveries opened with no papers: {empty}"
    assert all(d.status == "sent" for d in deliveries(db))
    got = Counter((r.rcpt_tos[0], p) for r in sink.messages for p in paper_ids_in(r.data))
    assert len(want) > 30 and got == want
    assert max(copies(sink).values()) == 1


def test_claims_are_fenced_and_every_write_needs_the_current_fence(db: Factory) -> None:
    """claim hands out attempt numbers as fences; once a newer claim exists, every write with
    the older fence (retry, fail, skip) returns "lost" and changes nothing. A finish with the
    older fence is "lost" too, but its copy was accepted, so the row is sent (issue 21: it must
    never end failed, nor be sent by the newer holder): the newer holder's writes change nothing."""
    from paperalerts.edges.db import deliveries as dl
    from paperalerts.edges.db import retries

    add_subscriber(db, "ann@example.org", "model")
    ingest(db)
    (did,) = dispatch_due_digests(db, CFG, now=NOW)
    t = [NOW]
    a = dl.claim(db, did, lease=CFG.lease, max_attempts=8, clock=lambda: t[0])
    assert a is not None and (a.attempt, a.until) == (1, NOW + CFG.lease)
    assert dl.claim(db, did, lease=CFG.lease, max_attempts=8, clock=lambda: t[0]) is None
    t[0] = NOW + CFG.lease + timedelta(seconds=1)
    b = dl.claim(db, did, lease=CFG.lease, max_attempts=8, clock=lambda: t[0])
    assert b is not None and b.attempt == 2
    assert retries.retry_or_give_up(
        db, a, after=timedelta(1), error="451", window=timedelta(1), max_attempts=8,
        clock=lambda: t[0],
    ).written == "lost"  # fmt: skip
    assert retries.pause(db, a, until=t[0], why="relay down") == "lost"
    assert dl.fail(db, a, error="550", bounce_threshold=1) == "lost"
    assert dl.skip(db, a, reason="paused") == "lost"
    (d,) = deliveries(db)
    assert (d.status, d.attempts, d.lease_until) == ("sending", 2, b.until)
    assert dl.finish(db, a, message_id="<x>", subject="s", clock=lambda: t[0]) == "lost"
    (d,) = deliveries(db)
    assert (d.status, d.message_id, d.sent_at, d.lease_until) == ("sent", "<x>", t[0], None)
    assert dl.extend(db, [a], lease=CFG.lease, clock=lambda: t[0]) == []
    assert dl.extend(db, [b], lease=CFG.lease, clock=lambda: t[0]) == []  # b must not send
    assert dl.fail(db, b, error="451") == "lost"
    assert dl.finish(db, b, message_id="<y>", subject="s", clock=lambda: t[0]) == "lost"
    (d,) = deliveries(db)
    assert (d.status, d.message_id) == ("sent", "<x>")


def test_a_lease_that_runs_out_on_the_last_attempt_fails_the_delivery(db: Factory) -> None:
    """A delivery whose worker dies on every attempt is failed after max_attempts, not handed
    out forever."""
    from paperalerts.edges.db import deliveries as dl

    add_subscriber(db, "ann@example.org", "model")
    ingest(db)
    (did,) = dispatch_due_digests(db, CFG, now=NOW)
    at = NOW
    for attempt in (1, 2):
        lease = dl.claim(db, did, lease=CFG.lease, max_attempts=2, clock=lambda t=at: t)
        assert lease is not None and lease.attempt == attempt  # ... and the worker dies
        at = lease.until + timedelta(seconds=1)
    assert dl.claim(db, did, lease=CFG.lease, max_attempts=2, clock=lambda: at) is None
    (d,) = deliveries(db)
    assert d.status == "failed" and "gave up after 2" in (d.last_error or "")


def test_a_render_crash_gives_the_claim_back(
    db: Factory, sink: SMTPSink, mailer: SMTPMailer
) -> None:
    """An unexpected error while building the message queues the delivery for a retry with
    backoff instead of holding the row until its lease runs out; the error propagates."""
    sub = add_subscriber(db, "ann@example.org", "model")
    ingest(db)
    (did,) = dispatch_due_digests(db, CFG, now=NOW)
    with transaction(db) as s:
        s.get_one(m.Subscriber, sub).timezone = "Not/AZone"  # corrupt data from outside
    with pytest.raises(ValueError, match="unknown timezone"):
        send_delivery(db, did, mailer=mailer, cfg=CFG, now=NOW)
    (d,) = deliveries(db)
    assert (d.status, d.attempts, d.lease_until) == ("queued", 1, None)
    assert d.next_attempt_at is not None and d.next_attempt_at >= NOW + CFG.backoff_base
    assert "unknown timezone" in (d.last_error or "") and not sink.messages

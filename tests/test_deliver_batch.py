"""Delivery in bulk (issue 10's scale path), on SQLite and PostgreSQL through a real SMTP server:
digests dispatched a chunk of subscribers at a time, and sends taken a chunk of ids at a time,
keep every promise of the one-at-a-time path - each matched paper in exactly one email, each
delivery sent once, a period's existing delivery never reopened."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import func, select

from paperalerts.core.message import message_id
from paperalerts.core.schedule import period_key
from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.edges.mailer import SMTPMailer
from paperalerts.pipeline import send_deliveries, send_delivery
from paperalerts.pipeline.dispatch_digests import dispatch_periodic
from smtp_sink import SMTPSink
from test_deliver import CFG, NOW, Factory, add_subscriber, ingest, paper_ids_in

RULES = ["video", "model", "language model", "diffusion", "benchmark"]


def _matched(db: Factory) -> dict[int, set[str]]:
    """Each delivery's attached papers, from the database."""
    out: dict[int, set[str]] = {}
    with db() as s:
        for did, pid in s.execute(
            select(m.Match.delivery_id, m.Match.paper_id).where(m.Match.delivery_id.is_not(None))
        ):
            out.setdefault(did, set()).add(pid)
    return out


def test_chunked_dispatch_then_batch_send_delivers_each_match_once(
    db: Factory, sink: SMTPSink, mailer: SMTPMailer
) -> None:
    """Five subscribers dispatched two per chunk: each committed chunk is handed out as it
    commits, every match is attached to its subscriber's one digest, and one batch send over one
    SMTP connection delivers each digest once, with exactly its papers and its Message-ID."""
    subs = [add_subscriber(db, f"r{i}@example.org", q) for i, q in enumerate(RULES)]
    ingest(db)
    handed: list[list[int]] = []
    ids = dispatch_periodic(db, CFG, now=NOW, chunk=2, on_created=handed.append)
    assert len(ids) == len(set(ids)) == len(subs)
    assert [len(c) for c in handed] == [2, 2, 1] and [i for c in handed for i in c] == ids
    with db() as s:
        assert s.scalar(select(func.count()).where(m.Match.delivery_id.is_(None))) == 0
        assert all(sub.next_digest_at > NOW for sub in s.scalars(select(m.Subscriber)))
    assert dispatch_periodic(db, CFG, now=NOW, chunk=2) == []  # nothing due twice

    outs = send_deliveries(db, ids + ids[:2], mailer=mailer, cfg=CFG, clock=lambda: NOW)
    assert [o.status for o in outs] == ["sent"] * len(ids)  # each id once, in order
    assert sink.connections == 1 and len(sink.messages) == len(ids)
    attached = _matched(db)
    by_mid = {str(r.message["Message-ID"]): r for r in sink.messages}
    for did in ids:
        got = by_mid[message_id(did, CFG.mail_domain)]
        assert paper_ids_in(got.data) == attached[did]
    again = send_deliveries(db, ids, mailer=mailer, cfg=CFG, clock=lambda: NOW)
    assert {o.status for o in again} == {"skipped"} and len(sink.messages) == len(ids)


def test_batch_send_renders_what_a_single_send_renders(
    db: Factory, sink: SMTPSink, mailer: SMTPMailer
) -> None:
    """The bulk loader feeds the same renderer: a digest sent in a batch and one sent alone
    carry the same papers, explanations and links (only the subscriber differs)."""
    a = add_subscriber(db, "a@example.org", "video")
    b = add_subscriber(db, "b@example.org", "video")
    ingest(db)
    ids = dispatch_periodic(db, CFG, now=NOW)
    by_sub = {}
    with db() as s:
        for d in s.scalars(select(m.Delivery)):
            by_sub[d.subscriber_id] = d.id
    batch = send_deliveries(db, [by_sub[a]], mailer=mailer, cfg=CFG, clock=lambda: NOW)
    assert batch[0].status == "sent"
    assert send_delivery(db, by_sub[b], mailer=mailer, cfg=CFG, now=NOW).status == "sent"
    assert len(ids) == 2 and len(sink.messages) == 2

    def text(i: int) -> str:
        """The text part without what is the recipient's own: address, links with tokens."""
        part = sink.messages[i].message.get_body(("plain",))
        assert part is not None
        body = str(part.get_content())
        return re.sub(r"https?://\S+|\b[ab]@example\.org", "", body)

    assert paper_ids_in(sink.messages[0].data) == paper_ids_in(sink.messages[1].data) != set()
    assert text(0) == text(1)
    assert sink.messages[0].message["Subject"] == sink.messages[1].message["Subject"]


def test_a_period_that_has_a_sent_digest_gets_its_new_matches_in_a_second_one(
    db: Factory, mailer: SMTPMailer
) -> None:
    """A digest already sent for this period (a send hour moved after it went out) is never
    reopened: the bulk dispatch gives the new matches a second delivery of the same period
    (``key~2``), so none waits a day and nothing is attached to a sent message."""
    sid = add_subscriber(db, "ann@example.org", "video")
    ingest(db)
    with transaction(db) as s:
        key = period_key("daily", "UTC", NOW - timedelta(minutes=30))
        s.add(m.Delivery(subscriber_id=sid, kind="digest", period_key=key, status="sent"))
    made = dispatch_periodic(db, CFG, now=NOW)
    assert len(made) == 1
    with db() as s:
        second = s.get_one(m.Delivery, made[0])
        assert second.period_key == f"{key}~2" and second.status == "queued"
        assert s.scalar(select(func.count()).where(m.Match.delivery_id.is_(None))) == 0
        assert s.scalar(select(func.count()).where(m.Match.delivery_id == made[0])) > 0
        assert s.get_one(m.Subscriber, sid).next_digest_at > NOW  # the schedule moves on


def test_a_batch_send_leaves_out_a_muted_authors_papers(
    db: Factory, sink: SMTPSink, mailer: SMTPMailer
) -> None:
    """The batch sender reads muted authors for its whole batch: a paper by an author the
    subscriber muted is left out of the digest, as a single send leaves it out."""
    from paperalerts.core.feedback import author_key
    from paperalerts.edges.db import repo

    sid = add_subscriber(db, "ann@example.org", "video")
    ingest(db)
    with db() as s:
        papers = repo.paper_values(
            s, set(s.scalars(select(m.Match.paper_id).where(m.Match.subscriber_id == sid)))
        )
    victim = next(p for p in papers.values() if p.authors)
    name = victim.authors[0]
    with transaction(db) as s:
        s.add(m.AuthorPref(subscriber_id=sid, author_key=author_key(name), author_name=name,
                           action="mute"))
    ids = dispatch_periodic(db, CFG, now=NOW)
    outs = send_deliveries(db, ids, mailer=mailer, cfg=CFG, clock=lambda: NOW)
    assert [o.status for o in outs] == ["sent"]
    got = paper_ids_in(sink.messages[-1].data)
    assert victim.id not in got
    assert got, "the other matched papers are still there"

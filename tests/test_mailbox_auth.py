"""Authenticated bounces: a bounce or complaint changes an address only when it proves it is about
a message we sent to that address (our signed envelope sender, or our Message-ID with the signed
unsubscribe link of that subscriber). Real-shaped DSN/ARF in a real Maildir; the envelope sender
through the real SMTP path (aiosmtpd sees it as MAIL FROM)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mail_reports import MAIL_DOMAIN, arf, dsn, our_digest
from paperalerts.core.bounces import classify
from paperalerts.core.message import build_message, message_id, prepare_message
from paperalerts.core.render import Rendered
from paperalerts.core.tokens import make_token
from paperalerts.core.verp import bounce_address, read_verp, verp_address, verp_proves
from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.edges.mailbox import MaildirBox
from paperalerts.edges.mailer import SMTPMailer, _envelope
from paperalerts.errors import ConfigError
from paperalerts.pipeline import DeliveryConfig, dispatch_due_digests, send_delivery
from paperalerts.pipeline.mailbox import MailboxConfig, poll_mailbox
from smtp_sink import SMTPSink
from test_deliver import add_subscriber, ingest
from test_mailbox import CFG, SECRET, _maildir, _state, _subscribers, bounce, complaint, verp
from web_support import WebEnv, make_admin

Factory = sessionmaker[Session]
NOW = datetime(2026, 3, 12, 12, 0, tzinfo=UTC)
UNSUBSCRIBE = f"unsubscribe@{MAIL_DOMAIN}"


def _poll(factory: Factory, tmp_path: Path, *messages: bytes) -> dict[str, int]:
    path = _maildir(tmp_path / "mail", *messages)
    return dict(poll_mailbox(factory, MaildirBox(path), CFG, now=NOW).counts)


def _ledger(factory: Factory) -> list[tuple[str, str | None, str]]:
    with factory() as s:
        return [(r.kind, r.email, r.detail) for r in s.scalars(select(m.InboundMail))]


def _delivery_id(factory: Factory, email: str) -> int:
    with factory() as s:
        return s.scalars(select(m.Delivery.id).join(m.Subscriber)
                         .where(m.Subscriber.email == email)).one()


def test_forged_reports_naming_an_address_change_nothing(db: Factory, tmp_path: Path) -> None:
    """Reports anyone can write about ann (to the published unsubscribe mailbox, to the bounce
    address, to a VERP address with a made-up or another delivery's tag, even returning a
    digest with the real Message-ID of ann's delivery, which is derived from its id) leave her
    active; each is recorded as unauthenticated with the address it named (SQLite and
    PostgreSQL)."""
    _subscribers(db, "ann@example.org", "bob@example.org")
    ann_delivery = _delivery_id(db, "ann@example.org")
    guessed = our_digest("ann@example.org", "x" * 20, delivery_id=ann_delivery)
    assert guessed["Message-ID"] == message_id(ann_delivery, MAIL_DOMAIN)  # anyone can
    forged_tag = f"bounces+{ann_delivery}-{'a' * 16}@{MAIL_DOMAIN}"
    other_tag = verp(db, "bob@example.org").replace(
        f"+{_delivery_id(db, 'bob@example.org')}-", f"+{ann_delivery}-")
    counts = _poll(db, tmp_path,
                   dsn("ann@example.org", to=UNSUBSCRIBE),
                   arf("ann@example.org", to=UNSUBSCRIBE),
                   dsn("ann@example.org", to=f"bounces@{MAIL_DOMAIN}", boundary="b2"),
                   dsn("ann@example.org", to=forged_tag, boundary="b3"),
                   dsn("ann@example.org", to=other_tag, boundary="b4"),
                   arf("ann@example.org", original=guessed, to=UNSUBSCRIBE, boundary="b5"),
                   dsn("ann@example.org", original=guessed, boundary="b6"))
    assert counts == {"messages": 7, "unauthenticated": 7}
    assert _state(db, "ann@example.org") == ("active", 0)
    assert _state(db, "bob@example.org") == ("active", 0)
    ledger = _ledger(db)
    assert {(k, e) for k, e, _ in ledger} == {("unauthenticated", "ann@example.org")}
    assert all("nothing proves we sent" in d for _, _, d in ledger)


def test_a_bounce_to_the_signed_envelope_sender_of_a_real_send_suppresses_its_address(
    db: Factory, sink: SMTPSink, mailer: SMTPMailer, tmp_path: Path
) -> None:
    """Scrape -> match -> SMTP: the server sees MAIL FROM bounces+ID-TAG@domain (and no
    Return-Path header in the data); a DSN sent there, returning the received message, marks
    the subscriber bounced, even when the reporting system names a forwarded address."""
    cfg = DeliveryConfig(base_url="https://alerts.example.org", secret=SECRET,
                         mail_from=f"Paper alerts <alerts@{MAIL_DOMAIN}>",
                         mail_domain=MAIL_DOMAIN)
    at = datetime(2024, 3, 12, 7, 30, tzinfo=UTC)
    add_subscriber(db, "ann@example.org", "video", due=at - timedelta(minutes=30))
    ingest(db, at=at)
    (delivery,) = dispatch_due_digests(db, cfg, now=at)
    assert send_delivery(db, delivery, mailer=mailer, cfg=cfg, now=at).status == "sent"
    (received,) = sink.messages
    assert re.fullmatch(rf"bounces\+{delivery}-[a-z2-7]{{16}}@{re.escape(MAIL_DOMAIN)}",
                        received.mail_from)
    assert received.mail_from == verp_address(f"bounces@{MAIL_DOMAIN}", SECRET, delivery,
                                              "ann@example.org")
    assert b"Return-Path" not in received.data
    original = received.message
    counts = _poll(db, tmp_path, dsn("ann.forward@elsewhere.example", original=original,
                                     to=received.mail_from))
    assert counts == {"messages": 1, "hard": 1}
    assert _state(db, "ann@example.org") == ("bounced", 3)
    assert "signed envelope sender of delivery" in _ledger(db)[0][2]


def test_a_complaint_is_proven_by_the_return_path_or_by_message_id_and_token(
    db: Factory, tmp_path: Path
) -> None:
    """A feedback loop returns our message as stored: its Return-Path (our VERP) proves it; so
    does our Message-ID together with the subscriber's signed unsubscribe link. The same
    Message-ID in a complaint naming someone else proves nothing about them."""
    ids = _subscribers(db, "ann@example.org", "bob@example.org", "cy@example.org")
    bob_digest = our_digest("bob@example.org",
                            make_token(SECRET, "unsubscribe", ids["bob@example.org"], 1, now=NOW),
                            delivery_id=_delivery_id(db, "bob@example.org"))
    with transaction(db) as s:  # the Message-ID the send would have recorded
        d = s.get_one(m.Delivery, _delivery_id(db, "bob@example.org"))
        d.message_id = str(bob_digest["Message-ID"])
    counts = _poll(db, tmp_path, complaint(db, "ann@example.org"),
                   arf("bob@example.org", original=bob_digest, boundary="b2"),
                   arf("cy@example.org", original=bob_digest, boundary="b3"))
    assert counts == {"messages": 3, "complaint": 2, "unauthenticated": 1}
    assert _state(db, "ann@example.org")[0] == "bounced"
    assert _state(db, "bob@example.org")[0] == "bounced"
    assert _state(db, "cy@example.org") == ("active", 0)


@pytest.mark.parametrize("status", ["5.7.26", "5.7.28", "5.7.515", "4.7.26", "5.7.23"])
def test_rejections_of_the_sender_never_suppress_the_subscriber(
    factory: Factory, tmp_path: Path, status: str
) -> None:
    """Bulk-sender rejections (DMARC/SPF/DKIM failed, unsolicited rate from our IP, Microsoft's
    authentication level) are the sender's problem: recorded as policy, the address untouched,
    even when the report is genuine."""
    _subscribers(factory, "ann@example.org")
    counts = _poll(factory, tmp_path, bounce(factory, "ann@example.org", status=status))
    assert counts == {"messages": 1, "policy": 1}
    assert _state(factory, "ann@example.org") == ("active", 0)
    assert "authentication or reputation" in _ledger(factory)[0][2]


@pytest.mark.parametrize(("status", "kind"), [
    ("5.7.26", "policy"), ("5.7.28", "policy"), ("5.7.515", "policy"), ("5.7.509", "policy"),
    ("4.7.28", "policy"), ("5.7.1", "hard"), ("5.1.1", "hard"), ("4.2.2", "soft"),
])
def test_bulk_sender_codes_are_classified_as_sender_policy(status: str, kind: str) -> None:
    """The classification names sender-side rejections apart from address failures."""
    assert classify(dsn("ann@example.org", status=status),
                    unsubscribe_address=UNSUBSCRIBE).verdicts[0].kind == kind


def test_verp_addresses_are_signed_per_delivery_and_recipient() -> None:
    """The tag reads back (any case) and proves only its own delivery and recipient; a
    malformed bounce address is refused with the setting's name."""
    base = bounce_address("", MAIL_DOMAIN)
    addr = verp_address(base, SECRET, 41, "Ann@Example.org")
    assert len(addr.split("@")[0]) <= 64
    tag = read_verp(f"<{addr.upper()}>", base)
    assert tag is not None and tag.delivery_id == 41
    assert verp_proves(SECRET, tag, "ann@example.org")
    assert not verp_proves(SECRET, tag, "bob@example.org")
    assert not verp_proves("another-secret-" + "x" * 20, tag, "ann@example.org")
    assert read_verp(addr, f"bounces@other.{MAIL_DOMAIN}") is None
    assert read_verp(f"bounces@{MAIL_DOMAIN}", base) is None
    assert MailboxConfig(secret=SECRET, mail_domain=MAIL_DOMAIN).verp_base == base
    with pytest.raises(ConfigError, match="BOUNCE_ADDRESS"):
        bounce_address("bounces+x@example.org", MAIL_DOMAIN)


def test_the_admin_sees_what_was_ignored_and_why(factory: Factory, tmp_path: Path) -> None:
    """The admin's Mailbox page lists each message with its outcome, the address it named and
    the reason (unauthenticated reports included)."""
    _subscribers(factory, "ann@example.org")
    _poll(factory, tmp_path, arf("ann@example.org", to=UNSUBSCRIBE))
    make_admin(factory)
    env = WebEnv.start(factory)
    env.login()
    page = env.client.get("/admin/mailbox?kind=unauthenticated")
    assert page.status_code == 200
    assert 'data-kind="unauthenticated"' in page.text and "ann@example.org" in page.text
    assert "nothing proves we sent the reported message" in page.text


def test_the_envelope_sender_is_the_same_built_or_prepared() -> None:
    """The signed envelope sender is MAIL FROM whether the message is built or assembled as
    bytes, and neither transmits a Return-Path header (only the receiving side writes one)."""
    rendered = Rendered("Your daily papers", "Two new papers.\n", "<p>Two new papers.</p>")
    rp = verp_address(f"bounces@{MAIL_DOMAIN}", SECRET, 7, "ann@example.org")
    kwargs: dict[str, Any] = {
        "from_addr": f"Paper alerts <alerts@{MAIL_DOMAIN}>", "to_addr": "ann@example.org",
        "to_name": "", "delivery_id": 7, "now": NOW, "base_url": "https://alerts.example.org",
        "unsubscribe_token": "t" * 20, "list_id": f"digest.{MAIL_DOMAIN}",
        "mail_domain": MAIL_DOMAIN, "return_path": rp}
    built = _envelope(build_message(rendered, **kwargs))
    assert built == _envelope(prepare_message(rendered, **kwargs))
    assert built[0] == rp and b"Return-Path" not in built[2]
    with pytest.raises(ConfigError, match="envelope sender"):
        build_message(rendered, **{**kwargs, "return_path": "bad\r\n@x"})

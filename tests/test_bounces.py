"""Classifying inbound mail (core.bounces): RFC 3464 DSNs, RFC 5965 complaints and replies to our
mailto: List-Unsubscribe, as real-shaped messages; everything else is ignored, never an error."""

from __future__ import annotations

import pytest

from mail_reports import MAIL_DOMAIN, arf, dsn, mailto_reply, our_digest, plain
from paperalerts.core.bounces import classify

UNSUB = f"unsubscribe@{MAIL_DOMAIN}"
TOKEN = "WzEsMV0.aBcDeF.sIgNaTuRe-_x"


@pytest.mark.parametrize(("name", "raw", "kind", "verdicts"), [
    ("hard: failed 5.1.1", dsn("ann@example.org"), "hard", [("hard", "ann@example.org")]),
    ("hard: failed 5.2.2 mailbox full for good", dsn("ann@example.org", status="5.2.2"),
     "hard", [("hard", "ann@example.org")]),
    ("soft: delayed 4.4.7", dsn("ann@example.org", action="delayed", status="4.4.7"),
     "soft", [("soft", "ann@example.org")]),
    ("soft: failed with a 4.x.x status", dsn("ann@example.org", status="4.2.2"),
     "soft", [("soft", "ann@example.org")]),
    ("delivered is no bounce", dsn("ann@example.org", action="delivered", status="2.0.0"),
     "ignored", []),
    ("relayed is no bounce", dsn("ann@example.org", action="relayed", status="2.0.0"),
     "ignored", []),
    ("complaint names Original-Rcpt-To", arf("bob@example.org"), "complaint",
     [("complaint", "bob@example.org")]),
    ("complaint without Original-Rcpt-To: the returned message's To",
     arf(None, original=our_digest("cy@example.org", "z" * 20)), "complaint",
     [("complaint", "cy@example.org")]),
    ("not-spam feedback is no complaint", arf("bob@example.org", feedback_type="not-spam"),
     "ignored", []),
    ("ordinary mail to the unsubscribe address without a token", plain(UNSUB), "ignored", []),
    ("ordinary mail elsewhere", plain("hello@example.org"), "ignored", []),
])
def test_reports_are_classified_per_recipient(
    name: str, raw: bytes, kind: str, verdicts: list[tuple[str, str]]
) -> None:
    """DSN: failed+5.x.x hard, delayed or 4.x.x soft, success ignored; ARF: complaint for the
    reported recipient unless not-spam; other mail ignored with a reason."""
    got = classify(raw, unsubscribe_address=UNSUB)
    assert got.kind == kind, name
    assert [(v.kind, v.email) for v in got.verdicts] == verdicts
    if kind == "ignored":
        assert got.detail


def test_reports_point_back_at_our_message_id() -> None:
    """A DSN or complaint carries the Message-ID of the digest it returns."""
    original = our_digest("ann@example.org", "t" * 20, delivery_id=7)
    for raw in (dsn("ann@example.org", original=original), arf("ann@example.org",
                                                              original=original)):
        assert classify(raw, unsubscribe_address=UNSUB).message_ids == (original["Message-ID"],)


@pytest.mark.parametrize("prefix", ["", "Re: ", "AW: "])
def test_a_reply_to_our_mailto_list_unsubscribe_carries_the_token(prefix: str) -> None:
    """The message a mail client sends for our List-Unsubscribe mailto: (RFC 6068: its address
    and subject) gives back the signed token, whatever the client prefixes to the subject."""
    raw = mailto_reply(our_digest("ann@example.org", TOKEN), subject_prefix=prefix)
    got = classify(raw, unsubscribe_address=UNSUB)
    assert (got.kind, got.token) == ("unsubscribe", TOKEN)


def test_a_token_sent_to_another_address_is_not_an_unsubscribe() -> None:
    """Only mail to our unsubscribe address counts; the From address never names anybody."""
    raw = plain("someone-else@example.org", subject=f"unsubscribe-{TOKEN}")
    assert classify(raw, unsubscribe_address=UNSUB).kind == "ignored"


def test_garbage_is_ignored_not_an_error() -> None:
    """Bytes that are hardly a message, or a report with its parts missing, are ignored."""
    for raw in (b"\x00\xff\xfe not mail", b"Content-Type: multipart/report; "
                b"report-type=delivery-status; boundary=x\r\n\r\n--x--\r\n"):
        assert classify(raw, unsubscribe_address=UNSUB).kind == "ignored"

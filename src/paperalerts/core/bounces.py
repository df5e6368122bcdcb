"""What a message in our mailbox asks for. Pure: bytes in, an `Inbound` value out.

Three kinds of mail arrive at the addresses our emails name:

- **unsubscribe requests**, sent to the ``mailto:`` of our ``List-Unsubscribe`` header
  (``unsubscribe@MAIL_DOMAIN?subject=unsubscribe-TOKEN``, see `core.message`): the signed
  unsubscribe token is read from the subject (mail clients may prefix "Re:" or similar) or,
  failing that, from the first line of the body. Only the token names the subscriber: the
  From address of a request proves nothing.
- **delivery status notifications** (RFC 3464: ``multipart/report;
  report-type=delivery-status`` with a ``message/delivery-status`` part): one verdict per
  recipient block. ``Action: failed`` with a 5.x.x ``Status`` is a hard bounce; ``failed``
  with 4.x.x, or ``Action: delayed``, is a soft bounce; ``delivered``, ``relayed`` and
  ``expanded`` are ignored. A rejection for the *sender's* authentication or reputation (the
  bulk-sender rules of the big mailbox providers: ``5.7.26`` SPF/DKIM/DMARC failed, ``5.7.28``
  unsolicited-mail rate from our IP, Microsoft's ``5.7.515`` authentication level, and RFC 7372's
  ``5.7.20``-``5.7.27``) is a ``policy`` verdict, hard or not: the recipient's address is fine and
  it is not their fault, so it must never suppress them; it is recorded for the operator, whose
  DNS or sending set-up needs fixing.
- **complaints** (RFC 5965 ARF: ``multipart/report; report-type=feedback-report`` with a
  ``message/feedback-report`` part): the recipient is ``Original-Rcpt-To`` or else the To of
  the returned message (``message/rfc822`` or ``text/rfc822-headers``). A ``not-spam`` report
  is no complaint.

Anything else is ``ignored`` with the reason, never an exception.

Nothing here decides whether a report is genuine: `Inbound` carries what can prove it (the
addresses the report was delivered to and the returned message's Return-Path, for the signed
envelope senders of `core.verp`; the returned Message-IDs and unsubscribe tokens), and the
mailbox step checks them against what we sent.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass, replace
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses, parseaddr
from typing import Final, Literal

Kind = Literal["unsubscribe", "hard", "soft", "complaint", "policy", "ignored"]
_TOKEN_RE: Final = re.compile(r"unsubscribe-([A-Za-z0-9_.-]{10,512})")
_STATUS_RE: Final = re.compile(r"^\s*([245])\.\d{1,3}\.\d{1,3}")
#: Enhanced status details (the x.7.N part) that reject the sender, not the address.
SENDER_POLICY: Final = frozenset({"7.20", "7.21", "7.22", "7.23", "7.24", "7.25", "7.26",
                                  "7.27", "7.28", "7.509", "7.515"})
#: Headers naming where a report was delivered (our VERP address, when it is one).
_DELIVERED_TO: Final = ("To", "Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To")


@dataclass(frozen=True)
class Verdict:
    """What one recipient of a report suffered: `kind` is hard, soft or complaint."""

    kind: Kind
    email: str
    status: str = ""  # the enhanced status code of a DSN, the feedback type of a complaint


@dataclass(frozen=True)
class Inbound:
    """A classified message: an unsubscribe `token`, or per-recipient `verdicts`, or why it
    was ignored (`detail`). For a report, what may prove it concerns our mail: `message_ids` of
    the returned message, `envelope` (the addresses the report was delivered to, and the
    returned message's Return-Path) and `returned_tokens` (unsubscribe tokens in the returned
    message's List-Unsubscribe)."""

    kind: Kind
    detail: str = ""
    token: str | None = None
    verdicts: tuple[Verdict, ...] = ()
    message_ids: tuple[str, ...] = ()
    envelope: tuple[str, ...] = ()
    returned_tokens: tuple[str, ...] = ()


def status_kind(code: str, action: str = "failed") -> Kind | None:
    """hard, soft or policy for an enhanced status code and DSN action, or None (no failure).
    `policy` before hard/soft: a sender-side rejection is nobody's bounce, whatever its class."""
    cls, _, detail = code.partition(".")
    if action in ("failed", "delayed") and detail in SENDER_POLICY:
        return "policy"
    if action == "failed" and cls == "5":
        return "hard"
    if action == "delayed" or (action == "failed" and cls == "4"):
        return "soft"
    return None


def classify(raw: bytes, *, unsubscribe_address: str) -> Inbound:
    """Read one message. `unsubscribe_address` is the address of our ``mailto:`` link
    (``unsubscribe@MAIL_DOMAIN``); a request sent elsewhere is not an unsubscribe."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    if msg.get_content_type() == "multipart/report":
        param = msg.get_param("report-type")
        report_type = param.lower() if isinstance(param, str) else ""
        if report_type == "delivery-status":
            return _with_proofs(_dsn(msg), msg)
        if report_type == "feedback-report":
            return _with_proofs(_arf(msg), msg)
        return Inbound("ignored", f"a report of type {report_type or 'none'!r}")
    return _unsubscribe(msg, unsubscribe_address.lower())


def _with_proofs(inbound: Inbound, msg: Message) -> Inbound:
    """`inbound` with where the report was delivered and what it returned of our message."""
    envelope = [a for field in _DELIVERED_TO for _, a in getaddresses(msg.get_all(field, []))]
    tokens: list[str] = []
    headers = _returned_headers(msg)
    if headers is not None:
        envelope += [a for _, a in getaddresses(headers.get_all("Return-Path", []))]
        for value in headers.get_all("List-Unsubscribe", []):
            tokens += _TOKEN_RE.findall(" ".join(str(value).split()))
    unique = tuple(dict.fromkeys(a.strip().lower() for a in envelope if "@" in a))
    return replace(inbound, envelope=unique, returned_tokens=tuple(dict.fromkeys(tokens)))


def _unsubscribe(msg: Message, address: str) -> Inbound:
    rcpts = {a.lower() for _, a in getaddresses(msg.get_all("To", []) + msg.get_all("Cc", []))}
    delivered = {a.strip().lower().strip("<>") for a in msg.get_all("Delivered-To", [])}
    if address not in rcpts | delivered:
        return Inbound("ignored", f"not a report and not addressed to {address}")
    found = _TOKEN_RE.search(str(msg.get("Subject", "")))
    if found is None:
        first = _first_text(msg).strip().splitlines()
        found = _TOKEN_RE.search(first[0]) if first else None
    if found is None:
        return Inbound("ignored", "an unsubscribe request without our token")
    return Inbound("unsubscribe", "mailto unsubscribe", token=found.group(1))


def _first_text(msg: Message) -> str:
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                charset = part.get_content_charset() or "utf-8"
                return payload.decode(charset, errors="replace")
    return ""


def _part(msg: Message, content_type: str) -> Message | None:
    for part in msg.walk():
        if part.get_content_type() == content_type:
            return part
    return None


def _field_blocks(part: Message) -> list[Message]:
    """The header blocks of a report part: the email package parses message/delivery-status
    into one Message per block; other report parts may come back as text."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    text = payload if isinstance(payload, str) else ""
    blocks = re.split(r"\r?\n\s*\r?\n", text.strip())
    return [HeaderParser().parsestr(b) for b in blocks if b.strip()]


def _address(value: str | None) -> str:
    """The address of a ``Final-Recipient: rfc822; user@host`` style field."""
    if not value:
        return ""
    kind, _, addr = str(value).partition(";")
    addr = addr if _ else kind
    return parseaddr(addr.strip())[1].lower()


def _returned_headers(msg: Message) -> Message | None:
    """The headers of the returned message (message/rfc822 or text/rfc822-headers), if any."""
    for ctype in ("message/rfc822", "text/rfc822-headers"):
        part = _part(msg, ctype)
        if part is None:
            continue
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            return payload[0]
        return HeaderParser().parsestr(str(payload))
    return None


def _returned_ids_and_to(msg: Message) -> tuple[tuple[str, ...], str]:
    """Message-IDs and the first To address of the returned message or headers, if any."""
    headers = _returned_headers(msg)
    if headers is None:
        return (), ""
    ids = (str(headers["Message-ID"]).strip(),) if headers.get("Message-ID") else ()
    return ids, parseaddr(str(headers.get("To", "")))[1].lower()


def _dsn(msg: Message) -> Inbound:
    part = _part(msg, "message/delivery-status")
    if part is None:
        return Inbound("ignored", "a delivery-status report without its message/delivery-status")
    ids, _ = _returned_ids_and_to(msg)
    verdicts: list[Verdict] = []
    for block in _field_blocks(part)[1:]:  # the first block is about the message, not a rcpt
        rcpt = _address(block.get("Final-Recipient")) or _address(block.get("Original-Recipient"))
        action = str(block.get("Action", "")).strip().lower()
        status = _STATUS_RE.match(str(block.get("Status", "")))
        code = status.group(0).strip() if status else ""
        kind = status_kind(code, action)
        if rcpt and kind is not None:
            verdicts.append(Verdict(kind, rcpt, code or action))
    if not verdicts:
        return Inbound("ignored", "a delivery-status report with no failed recipient",
                       message_ids=ids)
    kinds = {v.kind for v in verdicts}
    worst: Kind = next(k for k in ("hard", "soft", "policy") if k in kinds)
    return Inbound(worst, "delivery status notification", verdicts=tuple(verdicts),
                   message_ids=ids)


def _arf(msg: Message) -> Inbound:
    part = _part(msg, "message/feedback-report")
    if part is None:
        return Inbound("ignored", "a feedback report without its message/feedback-report")
    blocks = _field_blocks(part)
    fields = blocks[0] if blocks else Message()
    feedback = str(fields.get("Feedback-Type", "")).strip().lower()
    ids, to = _returned_ids_and_to(msg)
    if feedback == "not-spam":
        return Inbound("ignored", "a not-spam feedback report", message_ids=ids)
    rcpts = [_address(v) for v in fields.get_all("Original-Rcpt-To", [])] or [to]
    verdicts = tuple(Verdict("complaint", r, feedback or "abuse") for r in rcpts if r)
    if not verdicts:
        return Inbound("ignored", "a complaint that names no recipient", message_ids=ids)
    return Inbound("complaint", f"feedback report ({feedback or 'abuse'})", verdicts=verdicts,
                   message_ids=ids)

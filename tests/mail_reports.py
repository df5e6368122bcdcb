"""Real-shaped inbound mail for the mailbox tests: delivery status notifications laid out as in
RFC 3464 (appendix examples: a human-readable part, message/delivery-status with a per-message
block then one block per recipient, the returned message), ARF complaints as in RFC 5965
(appendix B: text part, message/feedback-report, the returned message/rfc822), and the reply a
mail client sends for our ``mailto:`` List-Unsubscribe (RFC 6068: the URL's address and subject).

Each returned message is a real digest message built by `core.message.build_message`."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

from paperalerts.core.message import build_message
from paperalerts.core.render import Rendered

MAIL_DOMAIN = "alerts.example.org"
SENT = datetime(2026, 3, 12, 7, 0, tzinfo=UTC)


def our_digest(to_addr: str, token: str, delivery_id: int = 41,
               return_path: str | None = None) -> EmailMessage:
    """A digest as we send it (the message a report returns); with `return_path`, as the
    recipient's mail system stored it (the envelope sender written as Return-Path)."""
    rendered = Rendered("Your daily papers", "Two new papers.\n", "<p>Two new papers.</p>")
    return build_message(
        rendered, from_addr=f"Paper alerts <alerts@{MAIL_DOMAIN}>", to_addr=to_addr, to_name="",
        delivery_id=delivery_id, now=SENT, base_url="https://alerts.example.org",
        unsubscribe_token=token, list_id=f"digest.{MAIL_DOMAIN}", mail_domain=MAIL_DOMAIN,
        return_path=return_path,
    )


def _crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


def dsn(rcpt: str, *, action: str = "failed", status: str = "5.1.1",
        diagnostic: str = "smtp; 550 5.1.1 <{rcpt}>... User unknown",
        original: EmailMessage | None = None, boundary: str = "RAA14128.773615765/MX.EXAMPLE.NET",
        to: str = f"alerts@{MAIL_DOMAIN}") -> bytes:
    """A DSN from the recipient's MX about one recipient (RFC 3464 section 9 / appendix), sent
    `to` the returned message's envelope sender (a forger writes any address here)."""
    original_text = (original or our_digest(rcpt, "x" * 20)).as_string()
    human = {"failed": "could not be delivered", "delayed": "has not yet been delivered"}.get(
        action, "was delivered")
    return _crlf(f"""Return-Path: <>
From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.net>
To: {to}
Subject: Returned mail: see transcript for details
Date: Thu, 12 Mar 2026 07:00:12 +0000
Message-ID: <202603120700.RAA14128@mx.example.net>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
    boundary="{boundary}"

This is a MIME-encapsulated message

--{boundary}

The original message was received at Thu, 12 Mar 2026 07:00:05 +0000
from mail.alerts.example.org [192.0.2.10]

   ----- The following addresses had delivery problems -----
<{rcpt}>  (message {human})

--{boundary}
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
Received-From-MTA: dns; mail.alerts.example.org
Arrival-Date: Thu, 12 Mar 2026 07:00:05 +0000

Original-Recipient: rfc822;{rcpt}
Final-Recipient: RFC822; {rcpt}
Action: {action}
Status: {status}
Remote-MTA: DNS; mailbox.example.net
Diagnostic-Code: {diagnostic.format(rcpt=rcpt)}
Last-Attempt-Date: Thu, 12 Mar 2026 07:00:11 +0000

--{boundary}
Content-Type: message/rfc822

{original_text}
--{boundary}--
""")


def arf(rcpt: str | None, *, feedback_type: str = "abuse",
        original: EmailMessage | None = None, boundary: str = "part1_13d.2e68ed54_boundary",
        to: str = f"fbl@{MAIL_DOMAIN}") -> bytes:
    """An ARF complaint from a mailbox provider's feedback loop (RFC 5965 appendix B.2);
    `rcpt` None leaves out Original-Rcpt-To (optional in the RFC), so only the returned
    message's To names the complainer."""
    original_text = (original or our_digest(rcpt or "ann@example.org", "y" * 20)).as_string()
    rcpt_line = f"Original-Rcpt-To: <{rcpt}>\n" if rcpt else ""
    return _crlf(f"""From: <feedback@fbl.example.com>
Date: Thu, 12 Mar 2026 09:40:36 +0000
Subject: FW: Your daily papers
To: <{to}>
Message-ID: <fbl-20260312-0001@fbl.example.com>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
     boundary="{boundary}"

--{boundary}
Content-Type: text/plain; charset="US-ASCII"
Content-Transfer-Encoding: 7bit

This is an email abuse report for an email message received from IP
192.0.2.10 on Thu, 12 Mar 2026 07:00:05 +0000.  For more information
about this format please see https://www.rfc-editor.org/rfc/rfc5965.

--{boundary}
Content-Type: message/feedback-report

Feedback-Type: {feedback_type}
User-Agent: ExampleFBL/1.0
Version: 1
Original-Mail-From: <bounces@{MAIL_DOMAIN}>
{rcpt_line}Arrival-Date: Thu, 12 Mar 2026 07:00:05 +0000
Reporting-MTA: dns; mx.fbl.example.com
Source-IP: 192.0.2.10

--{boundary}
Content-Type: message/rfc822
Content-Disposition: inline

{original_text}
--{boundary}--
""")


def mailto_reply(original: EmailMessage, *, subject_prefix: str = "",
                 sender: str = "ann@example.org") -> bytes:
    """What a mail client sends when its user picks the mailto: of our List-Unsubscribe: a
    message to the URL's address with the URL's subject (RFC 6068)."""
    header = str(original["List-Unsubscribe"])
    mailto = next(p.strip().strip("<>") for p in header.split(",") if "mailto:" in p)
    url = urlsplit(mailto)
    subject = unquote(parse_qs(url.query)["subject"][0])
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = unquote(url.path)
    msg["Subject"] = subject_prefix + subject
    msg["Date"] = "Thu, 12 Mar 2026 10:00:00 +0000"
    msg["Message-ID"] = f"<unsub-{abs(hash(subject))}@example.org>"
    msg.set_content("Please unsubscribe me.\n")
    return bytes(msg)


def plain(to: str, subject: str = "Hello") -> bytes:
    msg = EmailMessage()
    msg["From"] = "someone@example.net"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content("Thanks for the papers!\n")
    return bytes(msg)

"""Rendered parts + headers -> an `email.message.EmailMessage`. Pure.

The message is multipart/alternative, text first, then HTML, both quoted-printable UTF-8 (7-bit
clean, so any relay takes it); the same delivery always gives the same bytes. Headers never carry
a line break from the data:

- the subject and display names lose control characters and line breaks, and "=?" is broken with
  a zero-width space, because CPython before 3.11.10/3.12.5 decodes RFC 2047 encoded words found
  in a value assigned to a header and writes the decoded text, CR/LF included (CVE-2024-6923);
- addresses go through `email.headerregistry.Address`, which refuses CR/LF;
- a last check refuses any header whose value still contains a control character.

The Message-ID is derived from the delivery id (same id on every resend); ``List-Unsubscribe``
carries the https and mailto forms with ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``
(RFC 8058). With `return_path` (the delivery's signed envelope sender, `core.verp`) the message
carries it as ``Return-Path``; the mailer sends it as ``MAIL FROM`` and strips the header, which
only the receiving side may write (RFC 5321 §4.4).
"""

from __future__ import annotations

import binascii
import email.policy
import functools
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.header import Header
from email.headerregistry import Address, BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import Policy
from email.utils import format_datetime, parseaddr
from typing import Any, Final

from paperalerts.core.render import Rendered, clean_subject
from paperalerts.core.subscribers import mail_address, unsubscribe_url
from paperalerts.errors import ConfigError, InvalidInput, PermanentDeliveryError


class _ListHeader(UnstructuredHeader, BaseHeader):
    """A comma-separated list of <URI>s (List-Unsubscribe, List-Id), folded only after its
    commas. The default folding would turn a long URL into RFC 2047 encoded words, which mail
    clients do not decode in these headers, breaking the unsubscribe link."""

    def fold(self, *, policy: Policy) -> str:
        parts = [p.strip() for p in str(self).split(",")]
        return f"{self.name}: " + f",{policy.linesep} ".join(parts) + policy.linesep


class _SubjectHeader(UnstructuredHeader, BaseHeader):
    """The Subject, folded so that it reads back exactly. The default folder breaks a line
    before an encoded word after keeping the space ahead of it, so a subject with a "≥" or an
    accent came back with a doubled space ("upvotes  ≥ 30"). A non-ASCII subject is sent as a
    run of UTF-8 encoded words instead, whose folding whitespace decoders drop."""

    def fold(self, *, policy: Policy) -> str:
        value = str(self)
        if value.isascii():
            return super().fold(policy=policy)
        encoded = Header(value, "utf-8", header_name=self.name).encode(
            linesep=policy.linesep, maxlinelen=policy.max_line_length or 78
        )
        return f"{self.name}: {encoded}{policy.linesep}"


class _Registry(HeaderRegistry):
    """HeaderRegistry builds a new header class on every lookup; building a message does ~20
    lookups, so the classes are kept (a third of the build time otherwise)."""

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        key = name.lower()
        cls = self._classes.get(key)
        if cls is None:
            cls = self._classes[key] = super().__getitem__(name)
        return cls


def _make_policy() -> email.policy.EmailPolicy[EmailMessage]:
    registry = _Registry()
    registry.map_to_type("list-unsubscribe", _ListHeader)
    registry.map_to_type("list-id", _ListHeader)
    registry.map_to_type("subject", _SubjectHeader)
    return email.policy.SMTP.clone(header_factory=registry)


#: The policy of every message built here: SMTP line endings, 78-column folding, our list headers.
POLICY: Final = _make_policy()
_MULTIPART: Final = 'multipart/alternative; boundary="=_paperalerts_alternative"'
_ID_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_RETURN_PATH_RE: Final = re.compile(r"^[A-Za-z0-9._+-]{1,64}@[A-Za-z0-9.-]{1,253}$")
_DOMAIN_RE: Final = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")
# Unicode categories Cc (C0, DEL, C1), Cs (surrogates), Zl and Zp: what must never be in a header.
_NOT_IN_HEADERS_RE: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def header_text(value: str) -> str:
    """`value` made safe as header text (subject, display name): one line, no control
    characters, and no RFC 2047 encoded-word opener ("=?") for a parser to decode."""
    return clean_subject(value).replace("=?", "=\u200b?")


def message_id(delivery_id: int | str, mail_domain: str) -> str:
    """``<delivery-ID.HASH@domain>``: the same for every send of one delivery; the hash keeps
    two installations' delivery 1 apart."""
    _check(_ID_RE, str(delivery_id), "delivery id")
    _check(_DOMAIN_RE, mail_domain, "mail domain")
    digest = hashlib.sha256(f"paperalerts\0{mail_domain}\0{delivery_id}".encode()).hexdigest()
    return f"<delivery-{delivery_id}.{digest[:16]}@{mail_domain}>"


def mail_domain_of(from_addr: str) -> str:
    """The domain of a From setting such as ``paperalerts <alerts@example.org>``."""
    return _sender(from_addr).domain


def build_message(
    rendered: Rendered,
    *,
    from_addr: str,
    to_addr: str,
    to_name: str,
    delivery_id: int | str,
    now: datetime,
    base_url: str,
    unsubscribe_token: str | None,
    list_id: str | None,
    mail_domain: str,
    return_path: str | None = None,
) -> EmailMessage:
    """The message for one delivery. `from_addr` is the MAIL_FROM setting (``Name <addr>`` or a
    bare address); `unsubscribe_token` and `list_id` may be None for mail that is not part of a
    subscription (the sign-up confirmation), which then has no List-* headers.

    Raises PermanentDeliveryError (enhanced code 5.1.3, "bad destination address syntax") for an
    unusable recipient address, ConfigError for a bad sender, domain, base URL or list id, and
    ValueError for a naive `now`."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    mid = message_id(delivery_id, mail_domain)
    msg = EmailMessage(policy=POLICY)
    # Text from the data goes through the policy's header parser and Address; values built
    # here from checked pieces are stored raw (set_raw), which skips a parse per header: the
    # header parser is most of the cost of building a message.
    msg["Subject"] = header_text(rendered.subject)
    msg["From"] = _from_header(from_addr)
    msg["To"] = _recipient(to_name, to_addr)
    msg.set_raw("Date", format_datetime(now))
    msg.set_raw("Message-ID", mid)
    msg.set_raw("Auto-Submitted", "auto-generated")  # RFC 3834: no vacation auto-replies
    if return_path is not None:
        _check(_RETURN_PATH_RE, return_path, "envelope sender")
        msg.set_raw("Return-Path", f"<{return_path}>")
    if list_id is not None:
        _check(_DOMAIN_RE, list_id, "list id")
        msg.set_raw("List-Id", f"<{list_id}>")
    if unsubscribe_token is not None:
        https = unsubscribe_url(base_url, unsubscribe_token)
        mailto = f"mailto:unsubscribe@{mail_domain}?subject=unsubscribe-{unsubscribe_token}"
        msg.set_raw("List-Unsubscribe", f"<{https}>, <{mailto}>")
        msg.set_raw("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
    msg.set_raw("MIME-Version", "1.0")
    # A boundary starting with "=_" cannot occur in quoted-printable text (which writes "=" as
    # "=3D"), so one fixed boundary is safe for every message and its parsed header is reused.
    msg["Content-Type"] = _constant_header("Content-Type", _MULTIPART)
    msg.attach(_text_part("plain", rendered.text))
    msg.attach(_text_part("html", rendered.html))
    _refuse_control_chars(msg)
    return msg


def _text_part(subtype: str, text: str) -> EmailMessage:
    """A text/<subtype> UTF-8 quoted-printable part (binascii's C encoder: ~10x the speed of
    email.quoprimime; soft line breaks keep lines within 76 characters, RFC 2045)."""
    part = EmailMessage(policy=POLICY)
    part["Content-Type"] = _constant_header("Content-Type", f'text/{subtype}; charset="utf-8"')
    part.set_raw("Content-Transfer-Encoding", "quoted-printable")
    part.set_payload(binascii.b2a_qp(text.encode(), istext=True).decode("ascii"))
    return part


def _check(pattern: re.Pattern[str], value: str, what: str) -> None:
    if not pattern.match(value):
        raise ConfigError(f"invalid {what}: {value!r}")


@functools.lru_cache(maxsize=16)
def _constant_header(name: str, value: str) -> Any:
    """A parsed header object for a value that never changes. Header objects are immutable,
    and assigning one skips the parser (the costliest part of building a message)."""
    return POLICY.header_factory(name, value)


@functools.lru_cache(maxsize=16)
def _from_header(from_addr: str) -> Any:
    """The From header for the MAIL_FROM setting, parsed once."""
    return _constant_header("From", str(_sender(from_addr)))


def _sender(from_addr: str) -> Address:
    name, addr = parseaddr(from_addr)
    try:
        if "@" not in addr or any(c in from_addr for c in "\r\n"):
            raise ValueError("not 'Name <user@domain>' or 'user@domain'")
        return Address(display_name=header_text(name), addr_spec=addr)
    except (ValueError, IndexError) as e:
        raise ConfigError(f"invalid MAIL_FROM {from_addr!r}: {e}") from e


def _recipient(name: str, addr: str) -> Address:
    try:
        if "@" not in addr or _NOT_IN_HEADERS_RE.search(addr):
            raise ValueError("not a user@domain address")
        # The check sign-up made (normalize_email ends with it): one test of "mailable".
        return mail_address(addr.strip(), header_text(name))
    except InvalidInput as e:
        raise PermanentDeliveryError(
            f"invalid recipient address {addr!r}: {e.message}", enhanced="5.1.3"
        ) from e
    except (ValueError, IndexError) as e:
        raise PermanentDeliveryError(
            f"invalid recipient address {addr!r}: {e}", enhanced="5.1.3"
        ) from e


def _refuse_control_chars(msg: EmailMessage) -> None:
    """Belt and braces: no header of the finished message may carry a control character."""
    for name, value in msg.raw_items():
        text: Any = str(value)
        if _NOT_IN_HEADERS_RE.search(text):
            raise ValueError(f"header {name} would carry a control character: {text!r}")


# --- render once, fill many ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prepared:
    """A message assembled as the bytes the mailer sends (CRLF line ends), with its envelope:
    what `prepare_message` makes of a delivery. `headers` holds the values of the headers
    callers look at (``Subject``, ``From``, ``To``, ``Message-ID``), as `get` and ``[]`` on an
    `EmailMessage` give them; `message()` parses the bytes for anything else."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes
    headers: Mapping[str, str]

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    def __getitem__(self, name: str) -> str | None:
        return self.headers.get(name)

    def message(self) -> EmailMessage:
        """The bytes parsed back into a message (tests, file outboxes)."""
        return BytesParser(policy=POLICY).parsebytes(self.data)


def prepare_message(
    rendered: Rendered,
    *,
    from_addr: str,
    to_addr: str,
    to_name: str,
    delivery_id: int | str,
    now: datetime,
    base_url: str,
    unsubscribe_token: str | None,
    list_id: str | None,
    mail_domain: str,
    return_path: str | None = None,
) -> Prepared | EmailMessage:
    """The bytes `build_message` with the same arguments gives once flattened for SMTP (same
    headers, parts and bytes; same errors), assembled without building an `EmailMessage`: what
    is the same in every message (sender, MIME structure, part headers) is written once per
    setting, and only the subject, recipient, date, ids and the two bodies are filled in.
    `return_path` becomes the envelope sender (`Prepared.sender`). A message the mailer must
    send as SMTPUTF8 (a non-ASCII address) is built the general way."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    recipient = _recipient(to_name, to_addr)
    sender = _sender(from_addr).addr_spec
    if return_path is not None:  # the envelope sender only: the mailer never sends the header
        _check(_RETURN_PATH_RE, return_path, "envelope sender")
        sender = return_path
    if not (recipient.addr_spec.isascii() and sender.isascii()):
        return build_message(
            rendered, from_addr=from_addr, to_addr=to_addr, to_name=to_name,
            delivery_id=delivery_id, now=now, base_url=base_url,
            unsubscribe_token=unsubscribe_token, list_id=list_id, mail_domain=mail_domain,
            return_path=return_path,
        )  # fmt: skip
    mid = message_id(delivery_id, mail_domain)
    subject = header_text(rendered.subject)
    head = [
        _folded("Subject", subject),
        _head(from_addr),
        _folded("To", str(recipient)),
        f"Date: {format_datetime(now)}\r\n",
        _folded("Message-ID", mid),
    ]
    if list_id is not None:
        _check(_DOMAIN_RE, list_id, "list id")
    head.append(_list_part(list_id))
    if unsubscribe_token is not None:
        https = unsubscribe_url(base_url, unsubscribe_token)
        mailto = f"mailto:unsubscribe@{mail_domain}?subject=unsubscribe-{unsubscribe_token}"
        head.append(_folded("List-Unsubscribe", f"<{https}>, <{mailto}>"))
        head.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
    for line in head:
        if _NOT_IN_HEADERS_RE.search(line.replace("\r\n", "")):
            raise ValueError(f"header would carry a control character: {line!r}")
    data = "".join((*head, _BODY_HEAD, _qp(rendered.text), _BETWEEN, _qp(rendered.html), _END))
    headers = {"Subject": subject, "From": _from_value(from_addr), "To": str(recipient),
               "Message-ID": mid}
    return Prepared(sender, (recipient.addr_spec,), data.encode("ascii"), headers)


_BOUNDARY: Final = "=_paperalerts_alternative"
_BODY_HEAD: Final = (
    f'MIME-Version: 1.0\r\nContent-Type: {_MULTIPART}\r\n\r\n--{_BOUNDARY}\r\n'
    'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable'
    "\r\n\r\n"
)
_BETWEEN: Final = (
    f'\r\n--{_BOUNDARY}\r\nContent-Type: text/html; charset="utf-8"\r\n'
    "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
)
_END: Final = f"\r\n--{_BOUNDARY}--\r\n"
_LINE_END_RE: Final = re.compile(r"\r\n|\r|\n")  # the line ends the generator writes as CRLF


def _qp(text: str) -> str:
    """A body as `_text_part` encodes it and the generator writes it (CRLF line ends)."""
    qp = binascii.b2a_qp(text.encode(), istext=True).decode("ascii")
    # str.replace is several times the speed of the regex, and the same where no CR is left
    return qp.replace("\n", "\r\n") if "\r" not in qp else _LINE_END_RE.sub("\r\n", qp)


def _folded(name: str, value: str) -> str:
    """``Name: value`` as the message's policy folds it for SMTP: a short ASCII value as it
    is (nothing to fold or encode; the generator writes a short raw value so too), anything
    else through the policy's header class for `name`."""
    if value.isascii() and 0 < len(name) + len(value) + 2 <= 78 and value.strip() == value != "":
        return f"{name}: {value}\r\n"
    return str(POLICY.header_factory(name, value).fold(policy=POLICY))


@functools.lru_cache(maxsize=16)
def _from_value(from_addr: str) -> str:
    return str(_from_header(from_addr))


@functools.lru_cache(maxsize=16)
def _head(from_addr: str) -> str:
    """The From line, the same in every message of one setting."""
    return str(_from_header(from_addr).fold(policy=POLICY))


@functools.lru_cache(maxsize=16)
def _list_part(list_id: str | None) -> str:
    """The Auto-Submitted and List-Id lines, the same in every message of one list."""
    listed = "" if list_id is None else _folded("List-Id", f"<{list_id}>")
    return f"Auto-Submitted: auto-generated\r\n{listed}"

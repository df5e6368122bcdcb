"""Pure subscriber values: address, schedule and rule validation, and the signed links every
email carries. No clock, no database: `now` is passed in, errors are `InvalidInput` naming the
field (and the character position of a rule error)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from functools import lru_cache
from typing import Final, cast
from zoneinfo import available_timezones

from email_validator import EmailNotValidError, validate_email

from paperalerts.core.rules.lint import check_rule_text
from paperalerts.core.schedule import Frequency
from paperalerts.core.tokens import make_token
from paperalerts.errors import ConfigError, InvalidInput

FREQUENCIES = ("instant", "daily", "weekly")
STATUSES = ("pending", "active", "paused", "unsubscribed", "bounced")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
#: The most rules one subscriber may have, whichever face adds them.
MAX_RULES: Final = 50
_TOKEN_RE: Final = re.compile(r"^[A-Za-z0-9_.-]{1,512}$")
_BASE_URL_RE: Final = re.compile(r"^https?://[^\s<>,\"?#]+$")


class InvalidAddress(InvalidInput):
    """An email address that cannot receive mail; the message says why."""

    def __init__(self, message: str) -> None:
        super().__init__("email", message)


def normalize_email(raw: str) -> str:
    """The canonical, all-ASCII form of an address (syntax checked, lower-cased, an
    internationalised domain in its IDNA form), or InvalidAddress saying why. A non-ASCII mailbox
    name is refused: the messages we build cannot address it, and it would only fail later, in
    the worker. No DNS lookups: deliverability is learnt from bounces, not guessed.

    Every face (sign-up, admin, CLI, API, import) enters addresses through it; it ends with
    `mail_address`, the check the message builder makes, so an address the mailer would refuse
    (``=?utf-8?q?a?=@example.org``) is refused here, at entry, with the reason."""
    shown = raw.strip() or "an empty value"
    try:
        v = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as e:
        raise InvalidAddress(f"{shown} is not a valid email address: {e}") from e
    if v.ascii_email is None:
        raise InvalidAddress(
            f"{shown} has non-ASCII characters before the @, which we cannot send to; "
            "please use an address in plain ASCII"
        )
    # Lower-case the local part too: mailbox providers treat it case-insensitively in practice,
    # and two rows for Ann@x.org and ann@x.org would send every paper twice.
    addr = v.ascii_email.lower()
    mail_address(addr)
    return addr


def mail_address(addr: str, display_name: str = "") -> Address:
    """The header value the message builder writes for `addr` (with `display_name`), or
    InvalidAddress when email's header parser would not write `addr` back unchanged (it reads
    ``=?utf-8?q?a?=@example.org`` as an encoded word). `normalize_email` runs it on every address
    entered, and the message builder builds every recipient with it: one check, so an address
    accepted at sign-up is one the mailer takes."""
    try:
        parsed = Address(display_name=display_name, addr_spec=addr)
        ok = parsed.addr_spec == addr
    except (ValueError, IndexError):  # email.errors.HeaderParseError and defects are ValueErrors
        ok = False
    if not ok:
        raise InvalidAddress(
            f"{addr or 'an empty value'} cannot be written in an email header as it is (its "
            "mailbox name reads as an encoded word or quoted text); please use a plain address"
        )
    return parsed


@dataclass(frozen=True)
class Prefs:
    """A subscriber's schedule: how often, and at which local hour (and weekday)."""

    frequency: Frequency
    send_hour: int
    weekday: int
    timezone: str


def _int(field: str, raw: str | int, lo: int, hi: int) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        msg = f"{field} must be a number from {lo} to {hi}, got {raw!r}"
        raise InvalidInput(field, msg) from None
    if not lo <= value <= hi:
        raise InvalidInput(field, f"{field} must be from {lo} to {hi}, got {value}")
    return value


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def parse_weekday(raw: str | int) -> int:
    """0 (Monday) .. 6 from a number or a day name (at least three letters)."""
    r = str(raw).strip().lower()
    if r.isdigit():
        return _int("weekday", r, 0, 6)
    for i, name in enumerate(WEEKDAYS):
        if len(r) >= 3 and name.startswith(r):
            return i
    raise InvalidInput("weekday", f"invalid weekday {raw!r}: use monday..sunday or 0 (Monday)..6")


def parse_prefs(frequency: str, hour: str | int, weekday: str | int, timezone: str) -> Prefs:
    """Schedule preferences from form, JSON or command-line values; InvalidInput naming the bad
    field."""
    if frequency not in FREQUENCIES:
        raise InvalidInput("frequency", f"frequency must be one of {', '.join(FREQUENCIES)}, "
                           f"got {frequency!r}")
    tz = (timezone or "UTC").strip()
    # Checked against the list first: zoneinfo raises IsADirectoryError for "America".
    if tz not in _zones():
        raise InvalidInput("timezone", f"unknown timezone {tz!r} (expected an IANA name like "
                           "'Europe/Berlin')")
    return Prefs(cast(Frequency, frequency), _int("hour", hour, 0, 23), parse_weekday(weekday), tz)


def check_rule(query: str, field: str = "query") -> str:
    """The normalised form of a rule; InvalidInput with the problem and its position: a parse
    error, or a lowercase operator word (`rules.lint.check_rule_text`, the check every surface
    shares)."""
    verdict = check_rule_text(query)
    if verdict.normalized is None:
        raise InvalidInput(field, verdict.message, verdict.position)
    return verdict.normalized


def parse_rule_lines(text: str, *, max_rules: int = MAX_RULES) -> list[tuple[str, str]]:
    """One rule per non-blank line -> [(query, normalised)]; an InvalidInput names the line and
    its position is the offset into the whole text. More than `max_rules` rules is refused."""
    out: list[tuple[str, str]] = []
    offset = 0
    for n, line in enumerate(text.splitlines(keepends=True), 1):
        query = line.strip()
        if query:
            try:
                out.append((query, check_rule(query, "rules")))
            except InvalidInput as e:
                lead = len(line) - len(line.lstrip())
                pos = offset + lead + (e.position or 0)
                raise InvalidInput("rules", f"line {n}: {e.message}", pos) from e
        offset += len(line)
    if len(out) > max_rules:
        raise InvalidInput("rules", f"at most {max_rules} rules, got {len(out)}")
    return out


def unsubscribe_url(base_url: str, token: str) -> str:
    """The one-click unsubscribe URL, ``BASE_URL/u/TOKEN``; ConfigError for a bad base URL."""
    if not _BASE_URL_RE.match(base_url):
        raise ConfigError(f"invalid base URL: {base_url!r}")
    if not _TOKEN_RE.match(token):
        raise ConfigError(f"invalid unsubscribe token: {token!r}")
    return f"{base_url.rstrip('/')}/u/{token}"


@dataclass(frozen=True)
class SubscriberLinks:
    manage: str
    unsubscribe: str
    feed: str


def subscriber_links(
    base_url: str, secret: str, subscriber_id: int, token_version: int, *, now: datetime
) -> SubscriberLinks:
    """The signed manage, unsubscribe (``BASE_URL/u/TOKEN``) and Atom feed URLs of a subscriber,
    stamped `now`."""
    base = base_url.rstrip("/")

    def tok(purpose: str) -> str:
        return make_token(secret, purpose, subscriber_id, token_version, now=now)  # type: ignore[arg-type]

    return SubscriberLinks(
        manage=f"{base}/manage/{tok('manage')}",
        unsubscribe=unsubscribe_url(base, tok("unsubscribe")),
        feed=f"{base}/feed/{tok('feed')}",
    )

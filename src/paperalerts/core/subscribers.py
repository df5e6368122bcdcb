"""Pure subscriber helpers: address validation and the signed links every email carries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from email_validator import EmailNotValidError, validate_email

from paperalerts.core.message import unsubscribe_url
from paperalerts.core.tokens import make_token
from paperalerts.errors import PaperAlertsError

FREQUENCIES = ("instant", "daily", "weekly")
STATUSES = ("pending", "active", "paused", "unsubscribed", "bounced")


class InvalidAddress(PaperAlertsError):
    """An email address that cannot receive mail; the message says why."""


def normalize_email(raw: str) -> str:
    """The canonical, all-ASCII form of an address (syntax checked, lower-cased, an
    internationalised domain in its IDNA form), or InvalidAddress saying why. A non-ASCII mailbox
    name is refused: the messages we build cannot address it, and it would only fail later, in
    the worker. No DNS lookups: deliverability is learnt from bounces, not guessed."""
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
    return v.ascii_email.lower()


@dataclass(frozen=True)
class SubscriberLinks:
    manage: str
    unsubscribe: str
    feed: str


def subscriber_links(
    base_url: str,
    secret: str,
    subscriber_id: int,
    token_version: int,
    *,
    now: datetime | None = None,
) -> SubscriberLinks:
    """The signed manage, unsubscribe (``BASE_URL/u/TOKEN``) and Atom feed URLs of a subscriber."""
    base = base_url.rstrip("/")

    def tok(purpose: str) -> str:
        return make_token(secret, purpose, subscriber_id, token_version, now=now)  # type: ignore[arg-type]

    return SubscriberLinks(
        manage=f"{base}/manage/{tok('manage')}",
        unsubscribe=unsubscribe_url(base, tok("unsubscribe")),
        feed=f"{base}/feed/{tok('feed')}",
    )

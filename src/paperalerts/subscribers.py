"""Pure subscriber helpers: address validation and the signed links every email carries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from email_validator import EmailNotValidError, validate_email

from paperalerts.errors import PaperAlertsError
from paperalerts.message import unsubscribe_url
from paperalerts.tokens import make_token

FREQUENCIES = ("instant", "daily", "weekly")
STATUSES = ("pending", "active", "paused", "unsubscribed", "bounced")


class InvalidAddress(PaperAlertsError):
    """An email address that cannot receive mail; the message says why."""


def normalize_email(raw: str) -> str:
    """The canonical form of an address (syntax checked, IDNA domain, lower-cased), or
    InvalidAddress. No DNS lookups: deliverability is learnt from bounces, not guessed."""
    try:
        v = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as e:
        raise InvalidAddress(f"invalid email address {raw!r}: {e}") from e
    # Lower-case the local part too: mailbox providers treat it case-insensitively in practice,
    # and two rows for Ann@x.org and ann@x.org would send every paper twice.
    return v.normalized.lower()


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

"""The exception tree, one branch per edge.

Expected outcomes ("nothing new", "already sent", "skipped: unsubscribed") are *values*, not
exceptions. Exceptions are failures, and each says whether trying again may help::

    PaperAlertsError
    ├── ConfigError                 a setting is missing or malformed (permanent)
    ├── FetchError                  the HTTP edge (fetch.py)
    │   ├── TransientFetchError     timeout, connection error, 429, 5xx: retry later
    │   └── PermanentFetchError     4xx, refused URL (scheme, private address), body too large
    ├── ParseError                  a page or feed is not what its kind promises (permanent)
    ├── RuleError                   a rule query is malformed; carries the character position
    ├── InvalidInput                a value a person entered (form, CLI, API) names its field
    └── DeliveryError               the SMTP edge (mailer.py)
        ├── TransientDeliveryError  4xx, connection errors, timeouts: retry with backoff
        └── PermanentDeliveryError  5xx: fail the delivery; 5.1.x also adds to the bounce score

`Transient` is a marker mixed into every transient class so callers can ask one question.
"""

from __future__ import annotations


class PaperAlertsError(Exception):
    """Base of every error this package raises on purpose."""


class Transient:
    """Marker: the same operation may succeed if tried again later."""


class ConfigError(PaperAlertsError):
    """A setting is missing or malformed."""


class FetchError(PaperAlertsError):
    """Fetching a URL failed."""

    def __init__(self, message: str, *, url: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class TransientFetchError(FetchError, Transient):
    """Timeouts, connection errors, 429 and 5xx after the retries ran out."""


class PermanentFetchError(FetchError):
    """A URL that will not work by trying again: 4xx, refused scheme or address, oversized body."""


class ParseError(PaperAlertsError):
    """A page or feed could not be read as its kind. The message says what and where."""

    def __init__(self, message: str, *, url: str = "", kind: str = "") -> None:
        where = " ".join(p for p in (kind, url) if p)
        super().__init__(f"{message} ({where})" if where else message)
        self.url = url
        self.kind = kind


class RuleError(PaperAlertsError):
    """A rule query is malformed. `position` is the 0-based character offset of the problem;
    `hint`, when given, is a suggestion shown after it ("did you mean 'title'?")."""

    def __init__(self, message: str, position: int = 0, *, hint: str = "") -> None:
        super().__init__(f"{message} at {position}" + (f" — {hint}" if hint else ""))
        self.reason = message
        self.position = position
        self.hint = hint


class InvalidInput(PaperAlertsError, ValueError):
    """A value entered through a face (web form, JSON API, CLI) that cannot be used: `field`
    names it, `message` says why, `position` is the character offset of a rule error inside that
    field when there is one. Faces translate it (a form error, a 422, an exit code)."""

    def __init__(self, field: str, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.field, self.message, self.position = field, message, position


class DeliveryError(PaperAlertsError):
    """Sending an email failed."""

    def __init__(
        self, message: str, *, code: int | None = None, enhanced: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.enhanced = enhanced


class TransientDeliveryError(DeliveryError, Transient):
    """4xx replies, connection errors and timeouts: retry with backoff."""


class PermanentDeliveryError(DeliveryError):
    """5xx replies: the delivery fails; an address rejection (5.1.x) adds to the bounce score."""

    @property
    def is_address_rejection(self) -> bool:
        return bool(self.enhanced and self.enhanced.startswith("5.1."))


class TokenError(PaperAlertsError):
    """A signed link token was refused. `reason` is one of ``malformed`` (not a token at all),
    ``tampered`` (bad signature), ``expired`` (older than the allowed age) or ``wrong_purpose``
    (a valid token made for another purpose, e.g. a manage token used to unsubscribe)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason

"""Signed, purpose-salted link tokens (itsdangerous ``URLSafeTimedSerializer``).

A token carries ``[subscriber_id, token_version]`` (payload tokens: followed by what their purpose
needs, e.g. the paper of a feedback link) and the time it was made, signed with the
secret key and salted with its purpose, so a manage token cannot be used to unsubscribe and a token
cannot be edited. Bumping a subscriber's ``token_version`` revokes every token made before: the
caller compares the version read back with the stored one.

Pure: `now` may be passed in (tests, replay); left out, the current time is used.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final, Literal, get_args

from itsdangerous import BadData, BadSignature, SignatureExpired, TimestampSigner
from itsdangerous.url_safe import URLSafeTimedSerializer

from paperalerts.errors import TokenError

Purpose = Literal["confirm", "manage", "unsubscribe", "feed", "view", "feedback", "undo"]
PURPOSES: Final[frozenset[str]] = frozenset(get_args(Purpose))
_SALT_PREFIX: Final = "paperalerts.token."


class _ClockSigner(TimestampSigner):
    """A TimestampSigner whose clock can be fixed (``now`` = Unix seconds, None = real time)."""

    def __init__(self, *args: Any, now: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._now = now

    def get_timestamp(self) -> int:
        return super().get_timestamp() if self._now is None else self._now


def _serializer(secret: str, purpose: str, now: datetime | None) -> URLSafeTimedSerializer:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}; expected one of {sorted(PURPOSES)}")
    if not secret:
        raise ValueError("the token secret is empty")
    if now is not None and now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    stamp = None if now is None else int(now.timestamp())
    return URLSafeTimedSerializer(
        secret,
        salt=_SALT_PREFIX + purpose,
        signer=_ClockSigner,
        signer_kwargs={"now": stamp},
    )


def make_token(
    secret: str,
    purpose: Purpose,
    subscriber_id: int,
    token_version: int,
    *,
    now: datetime | None = None,
) -> str:
    """A URL-safe token for `purpose` naming the subscriber and their current token version.

    Raises ValueError for an unknown purpose, an empty secret or non-integer ids."""
    for name, value in (("subscriber_id", subscriber_id), ("token_version", token_version)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an int, got {value!r}")
    token = _serializer(secret, purpose, now).dumps([subscriber_id, token_version])
    assert isinstance(token, str)  # URLSafeTimedSerializer over text secrets returns str
    return token


def read_token(
    secret: str,
    purpose: Purpose,
    token: str,
    max_age: float | timedelta | None = None,
    *,
    now: datetime | None = None,
) -> tuple[int, int]:
    """Verify `token` for `purpose` and return ``(subscriber_id, token_version)``.

    `max_age` (seconds or a timedelta; None = no limit) bounds the token's age. Raises TokenError
    with ``reason`` ``malformed``, ``tampered``, ``expired`` or ``wrong_purpose``; never returns
    values from a token that failed verification."""
    age = max_age.total_seconds() if isinstance(max_age, timedelta) else max_age
    age_limit = None if age is None else int(age)
    try:
        payload = _serializer(secret, purpose, now).loads(token, max_age=age_limit)
    except SignatureExpired as e:
        raise TokenError(f"the {purpose} link has expired", reason="expired") from e
    except BadSignature as e:
        other = _other_purpose(secret, purpose, token, now)
        if other is not None:
            raise TokenError(
                f"this is a {other} link, not a {purpose} link", reason="wrong_purpose"
            ) from e
        if "." not in token:
            raise TokenError(f"the {purpose} link is not a valid token", reason="malformed") from e
        raise TokenError(f"the {purpose} link is invalid or was altered", reason="tampered") from e
    except BadData as e:  # signature fine but the payload does not decode: treat as malformed
        raise TokenError(f"the {purpose} link is not a valid token", reason="malformed") from e
    return _pair(purpose, payload)


def _pair(purpose: str, payload: Any) -> tuple[int, int]:
    if (
        not isinstance(payload, list)
        or len(payload) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in payload)
    ):
        raise TokenError(f"the {purpose} link carries an unexpected payload", reason="malformed")
    return payload[0], payload[1]


def make_payload_token(
    secret: str, purpose: Purpose, payload: list[Any], *, now: datetime | None = None
) -> str:
    """A token for `purpose` carrying a JSON list whose first two items are
    ``[subscriber_id, token_version]`` and the rest what the purpose needs (e.g. a paper id).
    ValueError when the first two items are not ints."""
    try:
        _pair(purpose, payload[:2])
    except TokenError as e:
        raise ValueError(f"a {purpose} token needs [subscriber_id, token_version, ...]") from e
    token = _serializer(secret, purpose, now).dumps(payload)
    assert isinstance(token, str)
    return token


def read_payload_token(
    secret: str,
    purpose: Purpose,
    token: str,
    max_age: float | timedelta | None = None,
    *,
    now: datetime | None = None,
) -> list[Any]:
    """Verify a `make_payload_token` token (same refusals as `read_token`) and return its list;
    its first two items are checked to be ints, the rest is the caller's to validate."""
    age = max_age.total_seconds() if isinstance(max_age, timedelta) else max_age
    try:
        payload = _serializer(secret, purpose, now).loads(
            token, max_age=None if age is None else int(age)
        )
    except BadData:
        read_token(secret, purpose, token, max_age, now=now)  # raises with the precise reason
        raise TokenError(f"the {purpose} link is not a valid token", reason="malformed") from None
    if not isinstance(payload, list) or len(payload) < 2:
        raise TokenError(f"the {purpose} link carries an unexpected payload", reason="malformed")
    _pair(purpose, payload[:2])
    return payload


def _other_purpose(secret: str, purpose: str, token: str, now: datetime | None) -> str | None:
    """The purpose `token` was really signed for, if it is a valid token for another one."""
    for other in sorted(PURPOSES - {purpose}):
        try:
            _serializer(secret, other, now).loads(token)
        except BadData:
            continue
        return other
    return None

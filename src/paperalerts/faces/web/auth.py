"""Admin authentication: argon2 passwords, a signed session cookie, login backoff, API tokens.

- Passwords are argon2id hashes (argon2-cffi). An unknown username is checked against a dummy
  hash, so the answer and its timing are the same as for a wrong password.
- The session cookie ``pa_admin`` is signed and timestamped (itsdangerous), HttpOnly,
  SameSite=Lax, Secure when the site is served over https. It names the admin and carries a
  fingerprint of their password hash, so changing the password ends every session.
- After `FREE_FAILURES` failed logins an account is locked for a doubling delay (capped at
  `MAX_LOCK`); each IP is also limited to a number of attempts per 15 minutes.
- API tokens are random; only their SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Annotated

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.faces.web.context import WebContext, ctx
from paperalerts.pipeline.api_tokens import TOKEN_PREFIX as TOKEN_PREFIX
from paperalerts.pipeline.api_tokens import new_api_token as new_api_token
from paperalerts.pipeline.api_tokens import token_hash as token_hash

SESSION_COOKIE = "pa_admin"
FREE_FAILURES = 3
BASE_LOCK = timedelta(seconds=5)
MAX_LOCK = timedelta(minutes=15)
_HASHER = PasswordHasher()


class NotAuthenticated(Exception):
    """No valid admin session (pages redirect to the login form, posts get 401)."""


@dataclass(frozen=True)
class AdminUser:
    id: int
    username: str

    @property
    def actor(self) -> str:
        return f"admin:{self.username}"


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise ValueError("a password needs at least 8 characters")
    return _HASHER.hash(password)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _HASHER.hash(secrets.token_urlsafe(16))


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches; a None hash (unknown user) costs the same and is False."""
    try:
        return _HASHER.verify(password_hash or _dummy_hash(), password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def lock_for(failures: int) -> timedelta:
    """How long an account stays locked after its `failures`-th consecutive failure."""
    if failures < FREE_FAILURES:
        return timedelta(0)
    return min(BASE_LOCK * (1 << min(failures - FREE_FAILURES, 20)), MAX_LOCK)


def _fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt="paperalerts.admin-session")


def session_cookie(secret: str, admin_id: int, password_hash: str) -> str:
    value = _serializer(secret).dumps([admin_id, _fingerprint(password_hash)])
    assert isinstance(value, str)
    return value


def read_session(context: WebContext, cookie: str | None) -> AdminUser | None:
    """The admin a session cookie names, if it is valid, unexpired and their password unchanged."""
    if not cookie:
        return None
    try:
        payload = _serializer(context.secret).loads(
            cookie, max_age=context.settings.admin_session_hours * 3600
        )
    except BadSignature:
        return None
    if not (isinstance(payload, list) and len(payload) == 2 and isinstance(payload[0], int)):
        return None
    with context.factory() as s:
        row = s.get(m.Admin, payload[0])
        if row is None or _fingerprint(row.password_hash) != payload[1]:
            return None
        return AdminUser(row.id, row.username)


def secure_cookies(context: WebContext, request: Request) -> bool:
    return request.url.scheme == "https" or context.base_url.startswith("https://")


def require_admin(request: Request) -> AdminUser:
    """Dependency of every admin route: the logged-in admin, or NotAuthenticated."""
    user = read_session(ctx(request), request.cookies.get(SESSION_COOKIE))
    if user is None:
        raise NotAuthenticated()
    request.state.admin_name = user.username
    return user


Admin = Annotated[AdminUser, Depends(require_admin)]


@dataclass(frozen=True)
class LoginResult:
    admin: AdminUser | None
    retry_after: float = 0.0


def attempt_login(context: WebContext, username: str, password: str, ip: str) -> LoginResult:
    """Check a login, applying the per-IP limit and the per-account backoff."""
    now = context.clock()
    wait = context.limits.login_ip.hit(ip, now.timestamp())
    if wait is not None:
        return LoginResult(None, wait)
    with transaction(context.factory) as s:
        row = s.scalars(select(m.Admin).where(m.Admin.username == username.strip())).first()
        if row is not None and row.locked_until is not None and row.locked_until > now:
            return LoginResult(None, (row.locked_until - now).total_seconds())
        if not verify_password(row.password_hash if row else None, password) or row is None:
            if row is not None:
                row.failed_logins += 1
                lock = lock_for(row.failed_logins)
                row.locked_until = now + lock if lock else None
            return LoginResult(None)
        row.failed_logins = 0
        row.locked_until = None
        row.last_login_at = now
        if _HASHER.check_needs_rehash(row.password_hash):
            row.password_hash = _HASHER.hash(password)
        return LoginResult(AdminUser(row.id, row.username))


def upsert_admin(session: Session, username: str, password: str) -> tuple[m.Admin, bool]:
    """Create the admin `username`, or set a new password for it. Returns (row, created).
    Raises ValueError for an empty name or a password under 8 characters."""
    name = username.strip()
    if not name or len(name) > 100:
        raise ValueError("an admin username needs 1 to 100 characters")
    hashed = hash_password(password)
    row = session.scalars(select(m.Admin).where(m.Admin.username == name)).first()
    if row is None:
        row = m.Admin(username=name, password_hash=hashed)
        session.add(row)
        session.flush()
        return row, True
    row.password_hash = hashed
    row.failed_logins = 0
    row.locked_until = None
    return row, False


_bearer = HTTPBearer(auto_error=False, description="An API token made in the admin (Tokens).")


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """Dependency of every API route: the actor name of a valid bearer token, else 401."""
    unauthorized = HTTPException(
        401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"}
    )
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise unauthorized
    context = ctx(request)
    digest = token_hash(credentials.credentials)
    now = context.clock()
    with transaction(context.factory) as s:
        row = s.scalars(select(m.ApiToken).where(m.ApiToken.token_hash == digest)).first()
        if row is None or row.revoked:
            raise unauthorized
        # One write a minute at most: the timestamp is for "is this token still used?".
        if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
            row.last_used_at = now
        return f"api:{row.name}"


ApiActor = Annotated[str, Depends(require_token)]


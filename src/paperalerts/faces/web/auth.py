"""Admin authentication: argon2 passwords, server-side sessions, login backoff, API tokens.

- Passwords are argon2id hashes (argon2-cffi). An unknown username is checked against a dummy
  hash, so the answer and its timing are the same as for a wrong password.
- Sessions live in the database (``admin_session``): the cookie ``pa_admin`` carries a random
  id (HttpOnly, SameSite=Lax, Secure when the site is served over https) of which only the
  SHA-256 is stored. Logging out deletes the row, so the cookie is worthless at once, not at
  its expiry; setting a new password deletes all of the admin's sessions.
- Failed logins back off per (client IP, username): after `FREE_FAILURES` failures that pair
  waits a doubling delay (capped at `MAX_LOCK`). The account itself is never locked, so someone
  who knows a username cannot lock its admin out from elsewhere; each IP is also limited to a
  number of attempts per 15 minutes. The client IP is the peer's, or the one a trusted proxy
  reports (`TRUSTED_PROXIES`, see `faces.web.app`).
- API tokens are random; only their SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Annotated

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.faces.web.context import WebContext, ctx
from paperalerts.pipeline.api_tokens import TOKEN_PREFIX as TOKEN_PREFIX
from paperalerts.pipeline.api_tokens import new_api_token as new_api_token
from paperalerts.pipeline.api_tokens import token_hash as token_hash

SESSION_COOKIE = "pa_admin"
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


def _session_key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def start_session(s: Session, admin_id: int, now: datetime, hours: int) -> str:
    """A new session for `admin_id` lasting `hours`; returns the cookie value. Expired sessions
    of anyone are cleared on the way."""
    s.execute(delete(m.AdminSession).where(m.AdminSession.expires_at <= now))
    session_id = secrets.token_urlsafe(32)
    s.add(m.AdminSession(id=_session_key(session_id), admin_id=admin_id, created_at=now,
                         expires_at=now + timedelta(hours=hours)))
    return session_id


def end_session(s: Session, cookie: str | None) -> None:
    """Log out: the session the cookie names stops existing (idempotent)."""
    if cookie:
        s.execute(delete(m.AdminSession).where(m.AdminSession.id == _session_key(cookie)))


def read_session(context: WebContext, cookie: str | None) -> AdminUser | None:
    """The admin whose unexpired, not logged-out session the cookie names."""
    if not cookie or len(cookie) > 100:
        return None
    with context.factory() as s:
        row = s.get(m.AdminSession, _session_key(cookie))
        if row is None or row.expires_at <= context.clock():
            return None
        admin = s.get(m.Admin, row.admin_id)
        return AdminUser(admin.id, admin.username) if admin is not None else None


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
    """Check a login, applying the per-IP limit and the per-(IP, username) backoff. The same
    work for an unknown username as for a known one."""
    now = context.clock()
    wait = context.limits.login_ip.hit(ip, now.timestamp())
    if wait is not None:
        return LoginResult(None, wait)
    name = username.strip()
    key = (ip, name.lower())
    wait = context.limits.login_backoff.wait(key, now.timestamp())
    if wait > 0:
        return LoginResult(None, wait)
    with transaction(context.factory) as s:
        row = s.scalars(select(m.Admin).where(m.Admin.username == name)).first()
        if not verify_password(row.password_hash if row else None, password) or row is None:
            context.limits.login_backoff.failed(key, now.timestamp())
            return LoginResult(None)
        context.limits.login_backoff.succeeded(key)
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
    # A new password ends every session of the old one.
    session.execute(delete(m.AdminSession).where(m.AdminSession.admin_id == row.id))
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


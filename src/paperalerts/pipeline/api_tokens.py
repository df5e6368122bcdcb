"""API tokens: made, listed and revoked alike from the admin's Tokens page and the CLI, each
change audited. A token is shown once, when made; only its SHA-256 is stored (a token is 32
random bytes, so a plain hash is as good as a slow one and lets a request be checked in one
indexed lookup)."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy.orm import Session

from paperalerts.edges.db import models as m
from paperalerts.edges.db import repo
from paperalerts.errors import InvalidInput

TOKEN_PREFIX = "pa_"  # says what a leaked string is (and lets secret scanners spot one)


def new_api_token() -> tuple[str, str]:
    """A fresh API token and the SHA-256 hex digest to store for it."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, token_hash(token)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    s: Session, name: str, actor: str, *, admin_id: int | None = None
) -> tuple[m.ApiToken, str]:
    """A new token named `name` (1-100 characters; API calls made with it are audited as
    ``api:<name>``), in the caller's transaction: its row and the token, to show once."""
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise InvalidInput("name", "a token needs a name of 1 to 100 characters")
    token, digest = new_api_token()
    row = m.ApiToken(name=name, token_hash=digest, admin_id=admin_id)
    s.add(row)
    s.flush()
    repo.audit(s, "create", "api_token", row.id, None, {"name": row.name}, actor)
    return row, token


def revoke_token(s: Session, row: m.ApiToken, actor: str) -> bool:
    """Revoke a token (requests with it get 401 from now on); False when it already was."""
    if row.revoked:
        return False
    row.revoked = True
    repo.audit(s, "revoke", "api_token", row.id, {"revoked": False}, {"revoked": True}, actor)
    return True

"""CSRF protection for every form: a synchronizer token bound to a per-browser nonce.

The nonce lives in the ``pa_csrf`` cookie (random, HttpOnly, SameSite=Lax, Secure under https),
set on the first response that lacks it. A form carries ``HMAC(secret, nonce)`` in the hidden
``csrf_token`` field, a script sends it in the ``X-CSRF-Token`` header. Another site can make a
browser send the cookie but cannot read it nor compute the HMAC, so it cannot forge the field.

Exempt by design: the RFC 8058 one-click unsubscribe POST (mail clients send no cookie; the signed
token in its URL is the authority) and the bearer-token JSON API (no cookies involved).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from starlette.requests import Request
from starlette.responses import Response

COOKIE = "pa_csrf"
FIELD = "csrf_token"
HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CSRFError(Exception):
    """A state-changing request without a valid CSRF token."""


def token_for(secret: str, nonce: str) -> str:
    """The form token for a browser's nonce."""
    return hmac.new(secret.encode(), f"csrf\0{nonce}".encode(), hashlib.sha256).hexdigest()


def nonce(request: Request) -> str:
    """This browser's nonce: from its cookie, else a new one (set on the response later)."""
    existing = getattr(request.state, "csrf_nonce", None)
    if isinstance(existing, str):
        return existing
    value = request.cookies.get(COOKIE, "")
    if not (16 <= len(value) <= 100 and value.replace("-", "").replace("_", "").isalnum()):
        value = secrets.token_urlsafe(24)
        request.state.csrf_new = True
    request.state.csrf_nonce = value
    return value


def form_token(request: Request, secret: str) -> str:
    return token_for(secret, nonce(request))


def set_cookie_if_new(request: Request, response: Response, secure: bool) -> None:
    """Send the nonce cookie when this request made a new one."""
    if getattr(request.state, "csrf_new", False):
        response.set_cookie(
            COOKIE, request.state.csrf_nonce, httponly=True, samesite="lax", secure=secure, path="/"
        )


async def verify(request: Request, secret: str) -> None:
    """Raise CSRFError unless a state-changing request carries the token for its cookie."""
    if request.method in SAFE_METHODS:
        return
    cookie = request.cookies.get(COOKIE)
    sent = request.headers.get(HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get(FIELD)
        sent = value if isinstance(value, str) else None
    if not cookie or not sent or not hmac.compare_digest(sent, token_for(secret, cookie)):
        raise CSRFError("missing or invalid CSRF token; reload the page and try again")


async def csrf_required(request: Request) -> None:
    """Dependency for form routes: CSRFError unless the request carries a valid token."""
    from paperalerts.faces.web.context import ctx

    await verify(request, ctx(request).secret)

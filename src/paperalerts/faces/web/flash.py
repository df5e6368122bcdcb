"""Post/redirect/get for every form: a POST answers 303 to a GET page, and what that page must
say about the POST (a notice, or the error with the values typed) travels in a flash cookie.

The cookie ``pa_flash`` is signed and timestamped (itsdangerous, zlib-compressed when that is
shorter), HttpOnly, SameSite=Lax, lives `MAX_AGE` seconds and names the path it is for: only a GET
of that path reads it, and the response to that GET deletes it (the app's middleware does, when
`take` marked the request). So a reload of the page after the redirect shows the page afresh
and never re-posts the form.

The page shown after a failed POST keeps the status the POST would have had (400 for a bad
value, 401 for a wrong password), so a script following the redirect still sees the failure.

A flash that would not fit in a cookie (`MAX_BYTES`: a very long rules text) is not sent:
`back` then renders the page directly in the POST's answer, as before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

COOKIE: Final = "pa_flash"
MAX_AGE: Final = 300
MAX_BYTES: Final = 3800  # browsers keep cookies up to 4096 bytes, name and attributes included


@dataclass(frozen=True)
class Flash:
    """What a page shows about the POST that redirected to it."""

    notice: str | None = None
    error: tuple[str, str, int | None] | None = None  # (field, message, position)
    form: dict[str, Any] = field(default_factory=dict)
    status: int = 200
    extra: dict[str, Any] = field(default_factory=dict)


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt="paperalerts.flash")


def _secret(request: Request) -> str:
    from paperalerts.faces.web.context import ctx

    return ctx(request).secret


def _secure(request: Request) -> bool:
    from paperalerts.faces.web.auth import secure_cookies
    from paperalerts.faces.web.context import ctx

    return secure_cookies(ctx(request), request)


def redirect(
    request: Request, target: str, flash: Flash | None = None, *,
    fallback: Callable[[], Response] | None = None,
) -> Response:
    """303 to `target` (a local path, optionally with a query), carrying `flash`. When the flash
    is too big for a cookie, `fallback()` answers instead (or the redirect goes without it)."""
    response = RedirectResponse(target, status_code=303)
    if flash is None:
        return response
    path = target.split("?", 1)[0].split("#", 1)[0]
    payload = [path, flash.notice, list(flash.error) if flash.error else None, flash.form,
               flash.status, flash.extra]
    value = _serializer(_secret(request)).dumps(payload)
    assert isinstance(value, str)
    if len(value) > MAX_BYTES:
        if fallback is not None:
            return fallback()
        return response
    response.set_cookie(COOKIE, value, max_age=MAX_AGE, httponly=True, samesite="lax",
                        secure=_secure(request), path="/")
    return response


def back(
    request: Request, target: str, error: Any, form: dict[str, Any] | None = None, *,
    status: int = 400, fallback: Callable[[Any], Response] | None = None,
) -> Response:
    """Redirect to `target` with a form error (anything with ``field``, ``message`` and
    ``position``, e.g. `InvalidInput`) and the values the user typed; `fallback(error)`
    renders the page directly when the flash is too big for a cookie."""
    flash = Flash(error=(error.field, error.message, error.position), form=dict(form or {}),
                  status=status)
    return redirect(request, target, flash,
                    fallback=None if fallback is None else (lambda: fallback(error)))


def take(request: Request) -> Flash | None:
    """The flash meant for this page, if any; the response will delete the cookie."""
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    request.state.flash_taken = True
    try:
        payload = _serializer(_secret(request)).loads(raw, max_age=MAX_AGE)
        path, notice, error, form, status, extra = payload
    except (BadSignature, ValueError, TypeError):
        return None
    if path != request.url.path:
        request.state.flash_taken = False  # meant for another page: leave it
        return None
    return Flash(notice=notice, error=(error[0], error[1], error[2]) if error else None,
                 form=form or {}, status=int(status), extra=extra or {})


def form_error(flash: Flash | None) -> Any:
    """The flash's error as an `InvalidInput` (what the templates take), or None."""
    from paperalerts.errors import InvalidInput

    if flash is None or flash.error is None:
        return None
    name, message, position = flash.error
    return InvalidInput(name, message, position)


def clear_if_taken(request: Request, response: Response, secure: bool) -> None:
    """Delete the flash cookie once a page has read it (called by the app's middleware)."""
    if getattr(request.state, "flash_taken", False):
        response.delete_cookie(COOKIE, path="/", secure=secure, httponly=True, samesite="lax")

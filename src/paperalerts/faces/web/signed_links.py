"""The page a visitor sees when a signed link (confirm, manage, unsubscribe) does not verify.

Shared by the public pages and the manage pages, so neither imports the other for it.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from paperalerts.core.tokens import make_token
from paperalerts.edges.db import models as m
from paperalerts.errors import TokenError
from paperalerts.faces.web.context import WebContext
from paperalerts.faces.web.templating import page


def link_error(request: Request, e: TokenError) -> Response:
    """A 400 page saying why the link is refused (expired, revoked, or altered)."""
    why = {"expired": "This link has expired.", "revoked": "This link is no longer valid."}
    return page(request, "public/message.html", {
        "title": "Link not valid",
        "message": why.get(e.reason, "This link is not valid (it may have been cut or altered)."),
        "signup": True,
    }, status=400, csrf=False)


def manage_url(context: WebContext, sub: m.Subscriber) -> str:
    """The subscriber's signed preferences link (no login)."""
    token = make_token(context.secret, "manage", sub.id, sub.token_version)
    return f"{context.base_url}/manage/{token}"

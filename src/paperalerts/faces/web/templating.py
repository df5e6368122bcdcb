"""The Jinja environment over ``templates/web`` (autoescaped HTML) and the page responder."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from paperalerts.core.paper_links import http_url
from paperalerts.core.render import marked_html, template_dir
from paperalerts.core.words import plural
from paperalerts.faces.web import zones
from paperalerts.faces.web.csrf import form_token as csrf_token

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def web_dir() -> Path:
    """``templates/web``: inside the installed package, else at the checkout's root."""
    return template_dir() / "web"


def _when(value: datetime | None) -> str:
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


def _ago(value: datetime | None, now: datetime) -> str:
    """``3 min ago``, ``2 h 5 min ago``, ``4 days ago``; ``never`` for None."""
    if value is None:
        return "never"
    minutes = max(int((now - value).total_seconds() // 60), 0)
    if minutes < 1:
        return "just now"
    if minutes < 60:
        return f"{minutes} min ago"
    if minutes < 48 * 60:
        return f"{minutes // 60} h {minutes % 60} min ago"
    return f"{minutes // 1440} days ago"


def _pretty(value: Any) -> str:
    return "—" if value is None else json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def environment(directory: Path | None = None) -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(directory or web_dir())),
        autoescape=select_autoescape(enabled_extensions=("html", "xml"), default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # http_url: every scraped link in a page goes through it (only http(s), else nothing).
    env.filters.update(marked=marked_html, when=_when, pretty=_pretty, ago=_ago,
                       http_url=http_url, plural=plural)
    env.globals.update(WEEKDAYS=WEEKDAYS, zone_groups=zones.grouped,
                       zones_offered=zones.offered)
    return env


def page(
    request: Request,
    name: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    csrf: bool = True,
) -> HTMLResponse:
    """Render ``name`` with `context` plus ``csrf_token``, ``admin`` (the logged-in admin's name
    or None) and ``request``. ``csrf=False`` for pages without forms that must not set the
    CSRF cookie (the one-click unsubscribe answer) or must not vary (the sign-up answer)."""
    from paperalerts.faces.web.context import ctx

    c = ctx(request)
    full = {
        "request": request,
        "csrf_token": csrf_token(request, c.secret) if csrf else "",
        "admin": getattr(request.state, "admin_name", None),
        "notice": None,
        **(context or {}),
    }
    html = c.templates.get_template(name).render(full)
    return HTMLResponse(html, status_code=status, headers=dict(headers or {}))


def not_found(request: Request, message: str) -> HTMLResponse:
    """The 404 page naming what is missing (``No topic 12.``), for ids that match no row."""
    return page(request, "public/message.html",
                {"title": "Not found", "message": message, "signup": False}, status=404)

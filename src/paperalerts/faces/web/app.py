"""`create_app(settings)`: the public pages, the admin and the JSON API in one ASGI app.

The API is a mounted FastAPI sub-application at ``/api/v1`` with its own OpenAPI document
(``/api/v1/openapi.json``); the site itself serves HTML only and publishes no schema.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from paperalerts.edges.config import Settings
from paperalerts.edges.db import make_engine
from paperalerts.edges.db import session_factory as make_factory
from paperalerts.edges.mailer import Mailer
from paperalerts.errors import ConfigError
from paperalerts.faces import health_routes
from paperalerts.faces.web import admin, csrf, flash, public, rule_check
from paperalerts.faces.web.api import create_api
from paperalerts.faces.web.auth import NotAuthenticated, secure_cookies
from paperalerts.faces.web.context import Limits, WebContext, ctx
from paperalerts.faces.web.templating import environment, page, web_dir

if TYPE_CHECKING:
    from paperalerts.pipeline.scrape import FetcherLike

log = logging.getLogger(__name__)

CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "frame-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def _default_fetcher(settings: Settings) -> Callable[[], FetcherLike]:
    def make() -> FetcherLike:
        from paperalerts.edges.fetch import Fetcher

        return Fetcher.from_settings(settings)

    return make


def create_app(
    settings: Settings,
    *,
    mailer: Mailer | None = None,
    session_factory: sessionmaker[Session] | None = None,
    fetcher_factory: Callable[[], FetcherLike] | None = None,
) -> FastAPI:
    """The web app over `settings`. `mailer` (default: from the settings), `session_factory`
    (default: an engine on ``settings.database_url``; the schema must be migrated) and the
    fetcher factory for "scrape now" are seams for tests and embedding."""
    factory = session_factory or make_factory(make_engine(settings.database_url))
    context = WebContext(
        settings=settings,
        factory=factory,
        templates=environment(),
        limits=Limits.from_settings(settings),
        fetcher_factory=fetcher_factory or _default_fetcher(settings),
        _mailer=mailer,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        yield
        if mailer is None:  # close only what we opened
            context.close()

    app = FastAPI(title="paperalerts", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.state.ctx = context
    proxies = trusted_proxies(settings.trusted_proxies)
    if proxies:
        # Only these peers may say who the client is (X-Forwarded-For) and that the request
        # came over https (X-Forwarded-Proto); from anyone else the headers are ignored, so
        # the sign-up and login limits count the real peer.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=proxies)
    _install_handlers(app)

    app.include_router(public.router)
    app.include_router(rule_check.router)
    app.include_router(health_routes.router)
    app.include_router(admin.router)
    app.mount("/api/v1", create_api(context))
    app.mount("/static", StaticFiles(directory=str(web_dir() / "static")), name="static")
    return app


def trusted_proxies(setting: str) -> list[str]:
    """The TRUSTED_PROXIES setting as a list of addresses and networks; ConfigError naming an
    entry that is neither (``*`` trusts every peer: only behind a proxy that strips the
    headers)."""
    out = []
    for entry in (e.strip() for e in setting.split(",")):
        if not entry:
            continue
        if entry != "*":
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as e:
                raise ConfigError(f"TRUSTED_PROXIES: {entry!r} is not an IP address or "
                                  "network (e.g. 10.0.0.5 or 10.0.0.0/8)") from e
        out.append(entry)
    return out


def _install_handlers(app: FastAPI) -> None:
    @app.middleware("http")
    async def headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]
                      ) -> Response:
        response = await call_next(request)
        h = response.headers
        h.setdefault("Content-Security-Policy", CSP)
        h.setdefault("Referrer-Policy", "no-referrer")  # links carry tokens
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("X-Frame-Options", "SAMEORIGIN")
        if request.url.path.startswith(("/admin", "/manage", "/u/", "/confirm", "/feed", "/d/",
                                        "/f/", "/fu/")):
            h.setdefault("Cache-Control", "no-store")
        secure = secure_cookies(ctx(request), request)
        csrf.set_cookie_if_new(request, response, secure)
        flash.clear_if_taken(request, response, secure)
        return response

    @app.exception_handler(NotAuthenticated)
    async def not_authenticated(request: Request, _: Exception) -> Response:
        if request.method in ("GET", "HEAD"):
            return RedirectResponse(f"/admin/login?next={request.url.path}", status_code=303)
        return PlainTextResponse("login required\n", status_code=401)

    @app.exception_handler(csrf.CSRFError)
    async def csrf_failed(request: Request, e: Exception) -> Response:
        return page(request, "public/message.html", {
            "title": "Form expired", "message": str(e), "signup": False}, status=403)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> Response:
        def where(loc: tuple[Any, ...]) -> str:  # ("body", "name") -> "form field 'name'"
            kind = {"body": "form field", "query": "query parameter", "path": "address part"}
            if len(loc) > 1 and loc[0] in kind:
                return f"{kind[loc[0]]} '{'.'.join(str(p) for p in loc[1:])}'"
            return ".".join(str(p) for p in loc) or "request"

        problems = "; ".join(
            f"{where(tuple(err.get('loc', ())))}: {err.get('msg')}" for err in e.errors()
        )
        return page(request, "public/message.html", {
            "title": "Invalid request", "message": problems, "signup": False}, status=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: Exception) -> Response:
        assert isinstance(e, StarletteHTTPException)
        if e.status_code == 404:
            return page(request, "public/message.html", {
                "title": "Not found", "message": "There is nothing at this address.",
                "signup": False}, status=404)
        return PlainTextResponse(f"{e.detail}\n", status_code=e.status_code,
                                 headers=getattr(e, "headers", None))


"""What every request handler needs, built once by `create_app` and kept on ``app.state``.

Handlers read it with ``ctx(request)``; they open their own transactions (``transaction(factory)``)
so the unit of work is visible where it happens.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from jinja2 import Environment
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request

from paperalerts.edges.config import Settings
from paperalerts.edges.mailer import Mailer, mailer_from_settings
from paperalerts.edges.ratelimit import SlidingWindow
from paperalerts.faces.web.backoff import LoginBackoff

if TYPE_CHECKING:
    from paperalerts.pipeline.scrape import FetcherLike


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Limits:
    """The per-process rate limits (sliding windows of one hour unless stated)."""

    signup_ip: SlidingWindow
    signup_address: SlidingWindow
    login_ip: SlidingWindow
    previews: SlidingWindow
    login_backoff: LoginBackoff = field(default_factory=LoginBackoff)

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            signup_ip=SlidingWindow(settings.signup_limit_per_ip, 3600),
            signup_address=SlidingWindow(settings.signup_limit_per_address, 3600),
            login_ip=SlidingWindow(30, 900),
            previews=SlidingWindow(settings.preview_limit_per_subscriber, 3600),
        )


@dataclass
class WebContext:
    """Settings, the database, the mailer (made on first use), templates, limits, the clock."""

    settings: Settings
    factory: sessionmaker[Session]
    templates: Environment
    limits: Limits
    fetcher_factory: Callable[[], FetcherLike]
    clock: Callable[[], datetime] = utc_now
    _mailer: Mailer | None = None
    _mailer_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def secret(self) -> str:
        return self.settings.effective_secret_key()

    @property
    def base_url(self) -> str:
        return self.settings.base_url.rstrip("/")

    def mailer(self) -> Mailer:
        """The mailer given to `create_app`, else the one the settings describe."""
        with self._mailer_lock:
            if self._mailer is None:
                self._mailer = mailer_from_settings(self.settings)
            return self._mailer

    def close(self) -> None:
        with self._mailer_lock:
            if self._mailer is not None:
                self._mailer.close()


def ctx(request: Request) -> WebContext:
    """The context of the app serving `request` (the API sub-app carries the same one)."""
    context = request.app.state.ctx
    assert isinstance(context, WebContext)
    return context

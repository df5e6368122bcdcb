"""``/healthz`` and ``/metrics`` for the web app (`create_app` includes `router`).

``GET /healthz`` answers 200 with JSON while the database answers (503 when it does not), so a
load balancer or compose healthcheck can rely on it; its body says ``ok`` or ``degraded`` and
why (open incidents, the scheduler's last run as ``last_tick``). It also runs the operator health
check in the background, at most once per `CHECK_EVERY` per process: a stopped beat cannot
report its own absence, so the web side, polled by the healthcheck, is where it is noticed.

``GET /metrics`` is the Prometheus exposition of `paperalerts.faces.metrics`.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import Any, Final

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from paperalerts.faces.web.context import WebContext, ctx
from paperalerts.pipeline.health import open_incidents

log = logging.getLogger(__name__)
router = APIRouter()
CHECK_EVERY: Final = 30.0  # seconds
_check_lock = threading.Lock()


@router.get("/healthz", include_in_schema=False)
def healthz(request: Request, background: BackgroundTasks) -> Response:
    """Liveness and a summary: 200 while the database answers, 503 when it does not."""
    context = ctx(request)
    now = context.clock()
    stale = _stale_after(context)
    try:
        with context.factory() as s:
            s.execute(text("SELECT 1"))
        tick, open_now = open_incidents(context.factory, now, stale_after=stale)
    except Exception as e:  # any database failure is an unhealthy answer, not a 500
        log.warning("healthz: database unavailable: %s", e)
        return JSONResponse({"status": "error", "database": f"{type(e).__name__}"}, status_code=503)
    body: dict[str, Any] = {
        "status": "degraded" if open_now else "ok",
        "database": "ok",
        "last_tick": tick.isoformat() if tick else None,
        "last_tick_age_seconds": round((now - tick).total_seconds(), 1) if tick else None,
        "incidents": [i.key for i in open_now],
    }
    if _due(request):
        background.add_task(_check, context)
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus metrics, computed from the database now."""
    from paperalerts.edges.broker import configured_broker_url
    from paperalerts.faces.metrics import CONTENT_TYPE, DatabaseCollector, exposition, registry_for

    context = ctx(request)
    settings = context.settings
    collector = DatabaseCollector(
        context.factory,
        broker_url=configured_broker_url(settings),
        stuck_after=timedelta(seconds=settings.delivery_stale_seconds),
        tick_stale_after=_stale_after(context),
        clock=context.clock,
    )
    return Response(exposition(registry_for(collector)), media_type=CONTENT_TYPE)


def _stale_after(context: WebContext) -> timedelta:
    return timedelta(seconds=context.settings.tick_stale_seconds)


def _due(request: Request) -> bool:
    """True at most once per CHECK_EVERY seconds per app."""
    with _check_lock:
        last = getattr(request.app.state, "health_checked_at", None)
        now = time.monotonic()
        if isinstance(last, float) and now - last < CHECK_EVERY:
            return False
        request.app.state.health_checked_at = now
        return True


def _check(context: WebContext) -> None:
    """The operator health check, after the response has gone (mail can be slow)."""
    from paperalerts.faces.step_config import health_config
    from paperalerts.pipeline.health import check_health

    try:
        cfg = health_config(context.settings)
        check_health(context.factory, context.mailer(), cfg, context.clock())
    except Exception:  # a background job: log it, never take the web process down
        log.exception("health check from /healthz failed")

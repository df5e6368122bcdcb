"""Admin: one subscriber's schedule (frequency, hour, weekday, timezone) and "send digest now"
(their waiting papers, through the normal delivery path: `pipeline.deliver_now`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from paperalerts.edges.db import models as m
from paperalerts.edges.db import repo
from paperalerts.edges.db.engine import transaction
from paperalerts.errors import DeliveryError, InvalidInput
from paperalerts.faces.step_config import delivery_config
from paperalerts.faces.web import flash
from paperalerts.faces.web.auth import Admin
from paperalerts.faces.web.context import ctx
from paperalerts.pipeline import subscriptions as subs
from paperalerts.pipeline.deliver_now import NotSendable, send_now

router = APIRouter(prefix="/subscribers")


@router.post("/{sub_id:id}/schedule")
def set_schedule(
    request: Request, admin: Admin, sub_id: int,
    frequency: Annotated[str, Form(max_length=20)],
    hour: Annotated[str, Form(max_length=5)] = "8",
    weekday: Annotated[str, Form(max_length=5)] = "0",
    timezone: Annotated[str, Form(max_length=64)] = "UTC",
) -> Response:
    """Change when the subscriber's digests go out; the next one is rescheduled at once."""
    context = ctx(request)
    here = f"/admin/subscribers/{sub_id}"
    form: dict[str, Any] = {"frequency": frequency, "hour": hour, "weekday": weekday,
                            "timezone": timezone}
    try:
        prefs = subs.parse_prefs(frequency, hour, weekday, timezone)
        with transaction(context.factory) as s:
            sub = s.get(m.Subscriber, sub_id)
            if sub is None:
                raise InvalidInput("subscriber", f"no subscriber {sub_id}")
            subs.update_subscriber(s, sub, context.clock(), admin.actor, prefs=prefs)
    except InvalidInput as e:
        return flash.back(request, here, e, form)
    return flash.redirect(request, here, flash.Flash(notice="Schedule saved."))


@router.post("/{sub_id:id}/send-now")
def send_digest_now(request: Request, admin: Admin, sub_id: int) -> Response:
    """Send the subscriber's waiting papers now, as their digest (or alert), and say what
    happened; their regular schedule stays as it is."""
    context = ctx(request)
    here = f"/admin/subscribers/{sub_id}"
    now = context.clock()
    try:
        result = send_now(context.factory, sub_id, mailer=context.mailer(),
                          cfg=delivery_config(context.settings), now=now)
    except NotSendable as e:
        return flash.back(request, here, InvalidInput("status", str(e)), status=409)
    except DeliveryError as e:  # not expected (send_delivery returns outcomes), but say it
        return flash.back(request, here, InvalidInput("status", f"not sent: {e}"), status=502)
    with transaction(context.factory) as s:
        repo.audit(s, "send_now", "subscriber", sub_id, None,
                   {"delivery": result.delivery_id, "papers": result.papers,
                    "status": result.outcome.status if result.outcome else None}, admin.actor)
    return flash.redirect(request, here, flash.Flash(notice=result.describe()))

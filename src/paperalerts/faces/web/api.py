"""The JSON API at ``/api/v1`` (a mounted FastAPI app with its own OpenAPI document at
``/api/v1/openapi.json``, browsable at ``/api/v1/docs``): subscribers, their rules (and a
validator), sources, deliveries here; topics and the admin's operations in `api_ops`. Every
operation needs a bearer token made in the admin; changes are audited as ``api:<token name>``.
Every answer is JSON and documented: 404 and 405 (with an ``Allow`` listing every method the
path has) for paths and methods the API does not have, too."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from paperalerts.core.sources import html_list
from paperalerts.edges.db import models as m
from paperalerts.edges.db import repo
from paperalerts.edges.db.engine import transaction
from paperalerts.errors import InvalidInput
from paperalerts.faces.web import api_docs, api_ops
from paperalerts.faces.web.admin_sources import check_source
from paperalerts.faces.web.api_common import (
    Conflict,
    Ctx,
    IdPath,
    Limit,
    NotFound,
    Offset,
    SafeText,
    get_or_404,
    new_router,
)
from paperalerts.faces.web.api_schemas import (
    DeliveryOut,
    Error,
    ResendIn,
    ResendOut,
    ResentOut,
    RuleIn,
    RuleOut,
    RulePatch,
    SourceIn,
    SourceOut,
    SourcePatch,
    Status,
    SubscriberIn,
    SubscriberOut,
    SubscriberPatch,
)
from paperalerts.faces.web.auth import ApiActor, require_token
from paperalerts.faces.web.context import WebContext
from paperalerts.faces.web.rule_check import RuleCheck, RuleText, check
from paperalerts.pipeline import source_changes
from paperalerts.pipeline import subscriptions as subs
from paperalerts.pipeline.resend import failed_deliveries, resend_deliveries

DeliveryStatus = Literal["queued", "sending", "sent", "failed"]


router = new_router()
_get = get_or_404


def _sub_out(s: Session, sub: m.Subscriber) -> SubscriberOut:
    out = SubscriberOut.model_validate(
        {k: getattr(sub, k) for k in SubscriberOut.model_fields if hasattr(m.Subscriber, k)})
    out.topics = sorted(subs.topic_ids(s, sub.id))
    out.rule_count = int(s.scalar(select(func.count()).select_from(m.Rule)
                             .where(m.Rule.subscriber_id == sub.id)) or 0)
    return out




@router.get("/subscribers", response_model=list[SubscriberOut], tags=["subscribers"])
def list_subscribers(c: Ctx, status: Status | None = None,
                     q: SafeText = "", limit: Limit = 100, offset: Offset = 0) -> Any:
    """Subscribers by email; `q` searches email and name, `status` filters."""
    query = select(m.Subscriber)
    if status:
        query = query.where(m.Subscriber.status == status)
    if q:
        query = query.where(or_(m.Subscriber.email.contains(q.lower()),
                                m.Subscriber.name.contains(q)))
    with c.factory() as s:
        rows = s.scalars(query.order_by(m.Subscriber.email).offset(offset).limit(limit))
        return [_sub_out(s, r) for r in rows]


@router.post("/subscribers", status_code=201, response_model=SubscriberOut,
             responses={409: {"model": Error}}, tags=["subscribers"])
def create_subscriber(c: Ctx, actor: ApiActor, body: SubscriberIn) -> Any:
    """Create a subscriber (no confirmation email: the caller vouches for the address)."""
    now = c.clock()
    with transaction(c.factory) as s:
        prefs = subs.parse_prefs(body.frequency, body.send_hour, body.weekday, body.timezone)
        sub = subs.create_subscriber(s, body.email, prefs, now, actor, status=body.status,
                                     name=body.name, topics=body.topics, public_only=False)
        return _sub_out(s, sub)


@router.get("/subscribers/{subscriber_id:id}", response_model=SubscriberOut, tags=["subscribers"])
def get_subscriber(c: Ctx, subscriber_id: IdPath) -> Any:
    with c.factory() as s:
        return _sub_out(s, _get(s, m.Subscriber, subscriber_id))


@router.patch("/subscribers/{subscriber_id:id}", response_model=SubscriberOut,
              responses={409: {"model": Error}}, tags=["subscribers"])
def update_subscriber(c: Ctx, actor: ApiActor, subscriber_id: IdPath,
                      body: SubscriberPatch) -> Any:
    now = c.clock()
    with transaction(c.factory) as s:
        sub = _get(s, m.Subscriber, subscriber_id)
        prefs = subs.parse_prefs(
            body.frequency or sub.frequency,
            sub.send_hour if body.send_hour is None else body.send_hour,
            sub.weekday if body.weekday is None else body.weekday,
            body.timezone or sub.timezone)
        subs.update_subscriber(s, sub, now, actor, email=body.email, name=body.name,
                               prefs=prefs)
        if body.status is not None:
            subs.set_status(s, sub, body.status, now, actor)
        if body.topics is not None:
            subs.set_topics(s, sub, set(body.topics), actor, public_only=False)
        return _sub_out(s, sub)


@router.delete("/subscribers/{subscriber_id:id}", status_code=204, response_class=Response,
               tags=["subscribers"])
def delete_subscriber(c: Ctx, actor: ApiActor, subscriber_id: IdPath) -> Response:
    """Delete a subscriber with their rules, follows, matches and deliveries."""
    with transaction(c.factory) as s:
        subs.delete_subscriber(s, _get(s, m.Subscriber, subscriber_id), actor)
    return Response(status_code=204)


@router.get("/subscribers/{subscriber_id:id}/rules", response_model=list[RuleOut], tags=["rules"])
def list_rules(c: Ctx, subscriber_id: IdPath) -> Any:
    with c.factory() as s:
        _get(s, m.Subscriber, subscriber_id)
        return list(s.scalars(select(m.Rule).where(m.Rule.subscriber_id == subscriber_id)
                              .order_by(m.Rule.id)))


@router.post("/subscribers/{subscriber_id:id}/rules", status_code=201, response_model=RuleOut,
             tags=["rules"])
def add_rule(c: Ctx, actor: ApiActor, subscriber_id: IdPath, body: RuleIn) -> Any:
    """Add a rule; an invalid one is refused with 422 naming the error and its position."""
    now = c.clock()
    with transaction(c.factory) as s:
        rule = subs.add_rule(s, _get(s, m.Subscriber, subscriber_id), body.query, body.name,
                             actor, now, enabled=body.enabled)
        return RuleOut.model_validate(rule)


@router.post("/rules/validate", response_model=RuleCheck, tags=["rules"])
def validate_rule(body: RuleText) -> RuleCheck:
    """Parse a rule: ``ok`` and its normalised form, or the error with its character position."""
    return check(body.query)


@router.get("/rules/{rule_id:id}", response_model=RuleOut, tags=["rules"])
def get_rule(c: Ctx, rule_id: IdPath) -> Any:
    with c.factory() as s:
        return _get(s, m.Rule, rule_id)


@router.patch("/rules/{rule_id:id}", response_model=RuleOut, tags=["rules"])
def update_rule(c: Ctx, actor: ApiActor, rule_id: IdPath, body: RulePatch) -> Any:
    with transaction(c.factory) as s:
        rule = _get(s, m.Rule, rule_id)
        subs.edit_rule(s, rule, rule.query if body.query is None else body.query,
                       rule.name if body.name is None else body.name,
                       rule.enabled if body.enabled is None else body.enabled, actor, c.clock())
        return RuleOut.model_validate(rule)


@router.delete("/rules/{rule_id:id}", status_code=204, response_class=Response, tags=["rules"])
def delete_rule(c: Ctx, actor: ApiActor, rule_id: IdPath) -> Response:
    with transaction(c.factory) as s:
        subs.delete_rule(s, _get(s, m.Rule, rule_id), actor)
    return Response(status_code=204)


@router.get("/sources", response_model=list[SourceOut], tags=["sources"])
def list_sources(c: Ctx) -> Any:
    with c.factory() as s:
        return list(s.scalars(select(m.Source).order_by(m.Source.name)))


@router.post("/sources", status_code=201, response_model=SourceOut,
             responses={409: {"model": Error}}, tags=["sources"])
def create_source(c: Ctx, actor: ApiActor, body: SourceIn) -> Any:
    name, kind, url, seconds = check_source(body.name, body.kind, body.url, body.every)
    options = _source_options(kind, body.selectors)
    with transaction(c.factory) as s:
        if repo.source_by_name(s, name) is not None:
            raise Conflict(f"a source named {name!r} exists already")
        src = source_changes.save_source(
            s, None, actor, name=name, kind=kind, url=url, every_seconds=seconds,
            enabled=body.enabled, backfill=body.backfill, options=options,
            display_name=body.display_name)
        return SourceOut.model_validate(src)


def _source_options(kind: str, selectors: dict[str, str] | None) -> dict[str, Any] | None:
    """An html source's checked selectors as its options; InvalidInput (422) on ``selectors``
    naming the bad one, or when selectors are given to another kind."""
    if kind != html_list.KIND:
        if selectors:
            raise InvalidInput("selectors", f"selectors are for html sources, not {kind}")
        return None
    try:
        return html_list.selectors_from_options(selectors or {}).to_options()
    except html_list.SelectorError as e:
        raise InvalidInput("selectors", str(e)) from e


@router.get("/sources/{source_id:id}", response_model=SourceOut, tags=["sources"])
def get_source(c: Ctx, source_id: IdPath) -> Any:
    with c.factory() as s:
        return _get(s, m.Source, source_id)


@router.patch("/sources/{source_id:id}", response_model=SourceOut, tags=["sources"])
def update_source(c: Ctx, actor: ApiActor, source_id: IdPath, body: SourcePatch) -> Any:
    with transaction(c.factory) as s:
        src = _get(s, m.Source, source_id)
        _, _, url, seconds = check_source(src.name, src.kind, body.url or src.url,
                                          body.every or f"{src.every_seconds}s")
        source_changes.save_source(
            s, src, actor, name=src.name, kind=src.kind, url=url, every_seconds=seconds,
            enabled=src.enabled if body.enabled is None else body.enabled,
            backfill=src.backfill, options=src.options, display_name=body.display_name)
        return SourceOut.model_validate(src)


@router.get("/deliveries", response_model=list[DeliveryOut], tags=["deliveries"])
def list_deliveries(c: Ctx, status: DeliveryStatus | None = None,
                    subscriber_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
                    limit: Limit = 100, offset: Offset = 0) -> Any:
    """The delivery log, newest first."""
    q = select(m.Delivery)
    if status:
        q = q.where(m.Delivery.status == status)
    if subscriber_id is not None:
        q = q.where(m.Delivery.subscriber_id == subscriber_id)
    with c.factory() as s:
        return list(s.scalars(q.order_by(m.Delivery.id.desc()).offset(offset).limit(limit)))


@router.get("/deliveries/{delivery_id:id}", response_model=DeliveryOut, tags=["deliveries"])
def get_delivery(c: Ctx, delivery_id: IdPath) -> Any:
    with c.factory() as s:
        return _get(s, m.Delivery, delivery_id)


@router.post("/deliveries/resend", response_model=ResendOut, tags=["deliveries"])
def resend_deliveries_api(c: Ctx, actor: ApiActor, body: ResendIn) -> Any:
    """Resend failed digests and alerts: each gets a new queued delivery with the same papers
    (the next scheduler run sends it). Give `ids`, or `failed: true` (with `since`, `kind`)."""
    if bool(body.ids) == body.failed:
        raise InvalidInput("ids", "give ids, or failed: true, not both or neither")
    if body.ids and (body.since or body.kind):
        raise InvalidInput("since", "since and kind go with failed: true")
    ids = body.ids or failed_deliveries(c.factory, since=body.since, kind=body.kind)
    out = resend_deliveries(c.factory, ids, now=c.clock(), actor=actor)
    done = sum(1 for r in out if r.new is not None)
    return ResendOut(resent=done, refused=len(out) - done, deliveries=[
        ResentOut(id=r.old, new_id=r.new, reason=r.reason or "resent") for r in out])


def create_api(context: WebContext) -> FastAPI:
    """The API application, sharing the site's context; mount it at ``/api/v1``."""
    api = FastAPI(
        title="paperalerts API", version="1",
        description="Subscribers, keyword rules, topics, sources, deliveries, the health "
        "report, feedback and the audit log: what the admin can do. Authenticate with "
        "`Authorization: Bearer <token>` (tokens are made in the admin, under Tokens, or with "
        "`paperalerts tokens create`).",
        dependencies=[Depends(require_token)], docs_url=None, redoc_url=None,
    )
    api.state.ctx = context
    api.include_router(router)
    api.include_router(api_ops.router)
    api_docs.install(api)

    @api.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        """Unknown paths and methods answer in JSON like everything else; a 405 lists in
        ``Allow`` every method of every operation on that path (Starlette names only the
        first route's)."""
        headers = dict(e.headers or {})
        if e.status_code == 405:
            headers["Allow"] = ", ".join(_allowed(api, request))
        return JSONResponse({"detail": str(e.detail)}, status_code=e.status_code,
                            headers=headers)

    @api.exception_handler(NotFound)
    async def not_found(_: Request, e: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(e)}, status_code=404)

    @api.exception_handler(Conflict)
    @api.exception_handler(subs.AlreadyExists)
    async def conflict(_: Request, e: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(e)}, status_code=409)

    @api.exception_handler(InvalidInput)
    async def invalid(_: Request, e: Exception) -> JSONResponse:
        assert isinstance(e, InvalidInput)
        item: dict[str, Any] = {"loc": ["body", e.field], "msg": e.message, "type": "value_error"}
        if e.position is not None:
            item["ctx"] = {"position": e.position}
        return JSONResponse({"detail": [item]}, status_code=422)

    return api



def _allowed(api: FastAPI, request: Request) -> list[str]:
    """The methods the API documents for the request's path (HEAD wherever GET is; every path
    parameter is a row id), read from its OpenAPI document so that ``Allow`` and the schema
    cannot disagree."""
    path = request.scope["path"].removeprefix(request.scope.get("root_path", ""))
    methods: set[str] = set()
    for template, operations in api.openapi()["paths"].items():
        if re.fullmatch(re.sub(r"\\\{[^}]+\\\}", "[0-9]+", re.escape(template)), path):
            methods.update(k.upper() for k in operations)
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)

"""The JSON API's operations beyond subscribers, rules and sources' CRUD: topics, "send now",
new signed links, scrape now, delete a source, the health report, feedback and the audit log —
what the admin can do, for scripts. Each calls the same step the admin page calls."""

from __future__ import annotations

from typing import Any, Literal

from fastapi.responses import Response
from sqlalchemy import func, select

from paperalerts.core.health import report_json
from paperalerts.edges.db import feedback_repo as fr
from paperalerts.edges.db import models as m
from paperalerts.edges.db import repo
from paperalerts.edges.db.engine import transaction
from paperalerts.errors import DeliveryError
from paperalerts.faces.step_config import delivery_config
from paperalerts.faces.web.admin import context_report
from paperalerts.faces.web.api_common import (
    Conflict,
    Ctx,
    IdPath,
    Limit,
    Offset,
    SafeText,
    get_or_404,
    new_router,
)
from paperalerts.faces.web.api_schemas import (
    AuditOut,
    Error,
    FeedbackOut,
    FeedbackRow,
    ScrapeOut,
    SendNowOut,
    TopicIn,
    TopicOut,
    TopicPatch,
)
from paperalerts.faces.web.auth import ApiActor
from paperalerts.pipeline import subscriptions as subs
from paperalerts.pipeline.deliver_now import NotSendable, send_now

router = new_router()


def _topic_out(followers: int, topic: m.Topic) -> TopicOut:
    out = TopicOut.model_validate(topic)
    out.followers = followers
    return out


def _followers(c: Ctx, topic_id: int | None = None) -> dict[int, int]:
    q = select(m.SubscriberTopic.topic_id, func.count()).group_by(m.SubscriberTopic.topic_id)
    if topic_id is not None:
        q = q.where(m.SubscriberTopic.topic_id == topic_id)
    with c.factory() as s:
        return {int(k): int(v) for k, v in s.execute(q).all()}


@router.get("/topics", response_model=list[TopicOut], tags=["topics"])
def list_topics(c: Ctx) -> Any:
    """Every topic by name, with how many subscribers follow it."""
    followers = _followers(c)
    with c.factory() as s:
        return [_topic_out(followers.get(t.id, 0), t)
                for t in s.scalars(select(m.Topic).order_by(m.Topic.name))]


@router.post("/topics", status_code=201, response_model=TopicOut,
             responses={409: {"model": Error}}, tags=["topics"])
def create_topic(c: Ctx, actor: ApiActor, body: TopicIn) -> Any:
    """Create a topic; its rule is checked like every rule (422 with the position)."""
    with transaction(c.factory) as s:
        topic = subs.save_topic(s, None, c.clock(), actor, name=body.name, query=body.query,
                                description=body.description, public=body.public,
                                enabled=body.enabled)
        return _topic_out(0, topic)


@router.get("/topics/{topic_id:id}", response_model=TopicOut, tags=["topics"])
def get_topic(c: Ctx, topic_id: IdPath) -> Any:
    with c.factory() as s:
        topic = get_or_404(s, m.Topic, topic_id)
        return _topic_out(_followers(c, topic_id).get(topic_id, 0), topic)


@router.patch("/topics/{topic_id:id}", response_model=TopicOut,
              responses={409: {"model": Error}}, tags=["topics"])
def update_topic(c: Ctx, actor: ApiActor, topic_id: IdPath, body: TopicPatch) -> Any:
    """Edit a topic; a changed rule applies to every follower at once."""
    with transaction(c.factory) as s:
        t = get_or_404(s, m.Topic, topic_id)
        subs.save_topic(
            s, t, c.clock(), actor,
            name=t.name if body.name is None else body.name,
            query=t.query if body.query is None else body.query,
            description=t.description if body.description is None else body.description,
            public=t.public if body.public is None else body.public,
            enabled=t.enabled if body.enabled is None else body.enabled)
        return _topic_out(_followers(c, topic_id).get(topic_id, 0), t)


@router.delete("/topics/{topic_id:id}", status_code=204, response_class=Response, tags=["topics"])
def delete_topic(c: Ctx, actor: ApiActor, topic_id: IdPath) -> Response:
    """Delete a topic; its follows go with it."""
    with transaction(c.factory) as s:
        subs.delete_topic(s, get_or_404(s, m.Topic, topic_id), actor)
    return Response(status_code=204)


@router.post("/subscribers/{subscriber_id:id}/send-now", response_model=SendNowOut,
             responses={409: {"model": Error}, 502: {"model": Error}}, tags=["subscribers"])
def send_subscriber_now(c: Ctx, actor: ApiActor, subscriber_id: IdPath) -> Any:
    """Send the subscriber's waiting papers now, as the admin's "send digest now" does; their
    schedule stays as it is. 409 when the subscriber is not active."""
    with c.factory() as s:
        get_or_404(s, m.Subscriber, subscriber_id)
    try:
        result = send_now(c.factory, subscriber_id, mailer=c.mailer(),
                          cfg=delivery_config(c.settings), now=c.clock())
    except NotSendable as e:
        raise Conflict(str(e)) from e
    except DeliveryError as e:
        raise Conflict(f"not sent: {e}") from e
    status = result.outcome.status if result.outcome else None
    with transaction(c.factory) as s:
        repo.audit(s, "send_now", "subscriber", subscriber_id, None,
                   {"delivery": result.delivery_id, "papers": result.papers, "status": status},
                   actor)
    return SendNowOut(delivery_id=result.delivery_id, papers=result.papers, status=status,
                      message=result.describe())


@router.post("/subscribers/{subscriber_id:id}/links/reset", status_code=204,
             response_class=Response, tags=["subscribers"])
def reset_subscriber_links(c: Ctx, actor: ApiActor, subscriber_id: IdPath) -> Response:
    """Invalidate every link already mailed to the subscriber (manage, unsubscribe, feed, view
    online); the next email carries new ones."""
    with transaction(c.factory) as s:
        subs.reset_links(s, get_or_404(s, m.Subscriber, subscriber_id), c.clock(), actor)
    return Response(status_code=204)


@router.post("/sources/{source_id:id}/scrape", response_model=ScrapeOut, tags=["sources"])
def scrape_source_now(c: Ctx, source_id: IdPath) -> Any:
    """Scrape the source now (bounded by the fetch deadline), then match what it found."""
    from paperalerts.pipeline import match_new_events, scrape_source

    with c.factory() as s:
        get_or_404(s, m.Source, source_id)
    fetcher = c.fetcher_factory()
    try:
        o = scrape_source(c.factory, source_id, fetcher=fetcher, now=c.clock(),
                          failing_after=c.settings.failing_after)
    finally:
        close = getattr(fetcher, "close", None)
        if callable(close):
            close()
    matched = match_new_events(c.factory, now=c.clock())
    return ScrapeOut(source=o.source, status=o.status, reason=o.reason,
                     entry_count=o.entry_count, new=len(o.new), updated=o.updated,
                     baseline=o.baseline, matched=matched.matches)


@router.delete("/sources/{source_id:id}", status_code=204, response_class=Response,
               tags=["sources"])
def delete_source(c: Ctx, actor: ApiActor, source_id: IdPath) -> Response:
    """Delete a source and its memory (snapshots, which papers it listed); papers and
    subscribers' matches stay. To stop scraping but keep its memory, PATCH enabled=false."""
    with transaction(c.factory) as s:
        repo.delete_source(s, get_or_404(s, m.Source, source_id), actor)
    return Response(status_code=204)


@router.get("/feedback", response_model=FeedbackOut, tags=["feedback"])
def feedback(c: Ctx) -> Any:
    """What readers said from their emails: per rule and topic, and on recommendations."""
    with c.factory() as s:
        rows = fr.noise_by_rule(s)
        precision = fr.recommendation_precision(s)
        authors = dict(s.execute(select(m.AuthorPref.action, func.count())
                                 .group_by(m.AuthorPref.action)).all())
    return FeedbackOut(
        rows=[FeedbackRow(kind=r.kind, id=r.id, name=r.name, more=r.more, less=r.less,
                          noise=r.noise) for r in rows],
        recommendations_shown=precision.shown, recommendations_judged=precision.judged,
        recommendations_liked=precision.liked,
        authors={str(k): int(v) for k, v in authors.items()})


AuditEntity = Literal["subscriber", "rule", "topic", "source", "delivery", "api_token",
                      "subscriber_topics", "admin"]


@router.get("/audit", response_model=list[AuditOut], tags=["audit"])
def audit_log(c: Ctx, entity: AuditEntity | None = None,
              entity_id: SafeText = "", actor: SafeText = "",
              limit: Limit = 100, offset: Offset = 0) -> Any:
    """Who changed what, newest first; filter by entity, its id and the actor (substring)."""
    with c.factory() as s:
        return repo.audit_rows(s, entity=entity or "", entity_id=entity_id, actor=actor,
                               limit=limit, offset=offset)


@router.get("/status", tags=["status"])
def status(c: Ctx) -> dict[str, Any]:
    """The operator's health report, as `paperalerts status --json` prints it: sources and their
    verdicts, the scheduler's last tick, queues, the last 24 hours, stuck and in-flight
    deliveries, open incidents."""
    return report_json(context_report(c))

"""CLI: curated topics (`topics list|add|edit|remove|follow|unfollow`), what the admin's Topics
page and a subscriber's page do, through the same subscriptions service (validated, audited)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated

import typer
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.faces.cli_console import checked, checked_rule, fail, out, plural
from paperalerts.faces.cli_db import open_db
from paperalerts.pipeline import subscriptions

topics_app = typer.Typer(no_args_is_help=True, help="Manage curated topics and who follows them.")

TopicName = Annotated[str, typer.Argument(help="The topic's name (quote it if it has spaces).")]
TopicNames = Annotated[list[str], typer.Argument(help="Topic names.")]


def _topic(s: Session, name: str) -> m.Topic:
    topic = s.scalars(select(m.Topic).where(m.Topic.name == name.strip())).first()
    if topic is None:
        fail(f"no topic named {name!r} (`paperalerts topics list` shows them)")
    return topic


@topics_app.command("list")
def topics_list() -> None:
    """One line per topic, tab-separated: id, name, public or hidden, enabled or disabled,
    followers, query."""
    with open_db()() as s:
        q = select(m.SubscriberTopic.topic_id, func.count()).group_by(
            m.SubscriberTopic.topic_id
        )
        followers = {tid: int(n) for tid, n in s.execute(q)}
        for t in s.scalars(select(m.Topic).order_by(m.Topic.name)):
            cells = [
                str(t.id), t.name, "public" if t.public else "hidden",
                "enabled" if t.enabled else "disabled",
                plural(followers.get(t.id, 0), "follower"), t.query,
            ]
            typer.echo("\t".join(cells))


@topics_app.command("add")
def topics_add(
    name: TopicName,
    query: Annotated[str, typer.Argument(help="The topic's rule, as for `rules add`.")],
    description: Annotated[str, typer.Option(help="Shown on the sign-up page.")] = "",
    public: Annotated[
        bool, typer.Option("--public/--hidden", help="Offered on the sign-up page, or not.")
    ] = True,
) -> None:
    """Add a topic subscribers can follow (its rule is checked first)."""
    normalized = checked_rule(query)
    with checked(), transaction(open_db()) as s:
        topic = subscriptions.save_topic(
            s, None, datetime.now(UTC), "cli", name=name, query=query, description=description,
            public=public,
        )
        tid = topic.id
    out.print(f"added topic {tid} {name.strip()}: {normalized}", markup=False)


@topics_app.command("edit")
def topics_edit(
    name: TopicName,
    new_name: Annotated[str | None, typer.Option("--name", help="Rename it.")] = None,
    query: Annotated[str | None, typer.Option(help="The new rule (applies to followers).")] = None,
    description: Annotated[str | None, typer.Option(help="The new description.")] = None,
    public: Annotated[
        bool | None, typer.Option("--public/--hidden", help="Offer it on the sign-up page?")
    ] = None,
    enabled: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Match with it, or not.")
    ] = None,
) -> None:
    """Change a topic (only what is given)."""
    if query is not None:
        checked_rule(query)
    with checked(), transaction(open_db()) as s:
        t = _topic(s, name)
        before = subscriptions.topic_state(t)
        subscriptions.save_topic(
            s, t, datetime.now(UTC), "cli",
            name=t.name if new_name is None else new_name,
            query=t.query if query is None else query,
            description=t.description if description is None else description,
            public=t.public if public is None else public,
            enabled=t.enabled if enabled is None else enabled,
        )
        verb = "unchanged" if before == subscriptions.topic_state(t) else "updated"
        line = f"{verb} topic {t.id} {t.name}: {t.normalized}"
    out.print(line, markup=False)


@topics_app.command("remove")
def topics_remove(
    name: TopicName,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a topic; its followers stop matching it (their other rules stay)."""
    factory = open_db()
    with factory() as s:
        t = _topic(s, name)
        followers = int(s.scalar(select(func.count()).select_from(m.SubscriberTopic)
                                 .where(m.SubscriberTopic.topic_id == t.id)) or 0)
    if not yes:
        what = f"topic {t.name}, followed by {plural(followers, 'subscriber')}"
        if not sys.stdin.isatty():
            fail(f"removing {what} cannot be undone: add --yes to confirm")
        typer.confirm(f"Remove {what}?", abort=True)
    with checked(), transaction(factory) as s:
        subscriptions.delete_topic(s, _topic(s, name), "cli")
    out.print(f"removed topic {t.name} ({plural(followers, 'follower')} unfollowed)", markup=False)


def _follow(email: str, names: list[str], follow: bool) -> None:
    with checked(), transaction(open_db()) as s:
        sub = subscriptions.existing(s, email)
        chosen = {_topic(s, n).id for n in names}
        current = subscriptions.topic_ids(s, sub.id)
        subscriptions.set_topics(
            s, sub, current | chosen if follow else current - chosen, "cli", public_only=False
        )
        ids = subscriptions.topic_ids(s, sub.id)
        now_following = sorted(s.scalars(select(m.Topic.name).where(m.Topic.id.in_(ids))))
        line = f"{sub.email} follows {', '.join(now_following) or 'no topics'}"
    out.print(line, markup=False)


@topics_app.command("follow")
def topics_follow(email: str, names: TopicNames) -> None:
    """Make a subscriber follow topics (hidden ones too, as the admin can)."""
    _follow(email, names, True)


@topics_app.command("unfollow")
def topics_unfollow(email: str, names: TopicNames) -> None:
    """Make a subscriber stop following topics."""
    _follow(email, names, False)


def register(app: typer.Typer) -> None:
    app.add_typer(topics_app, name="topics")

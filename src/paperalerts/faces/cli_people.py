"""CLI commands for subscribers and their rules (registered by cli.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from paperalerts.core.rules import compile_rules, parse, to_text
from paperalerts.core.schedule import next_digest_at
from paperalerts.core.subscribers import (
    FREQUENCIES,
    InvalidAddress,
    normalize_email,
    subscriber_links,
)
from paperalerts.edges.config import get_settings
from paperalerts.edges.db import models as m
from paperalerts.edges.db import repo
from paperalerts.edges.db.engine import transaction
from paperalerts.edges.db.repo import audit
from paperalerts.errors import RuleError
from paperalerts.faces.cli_console import fail, out
from paperalerts.faces.cli_db import open_db

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _fail(message: str, code: int = 1) -> None:
    fail(message, code)


def _email(raw: str) -> str:
    try:
        return normalize_email(raw)
    except InvalidAddress as e:
        _fail(str(e))
        raise


def _weekday(raw: str) -> int:
    r = raw.strip().lower()
    if r.isdigit() and 0 <= int(r) <= 6:
        return int(r)
    for i, name in enumerate(WEEKDAYS):
        if len(r) >= 3 and name.startswith(r):
            return i
    _fail(f"invalid weekday {raw!r}: use monday..sunday or 0 (Monday)..6")
    raise AssertionError


def _subscriber(s: Session, email: str) -> m.Subscriber:
    sub = s.scalars(select(m.Subscriber).where(m.Subscriber.email == email)).first()
    if sub is None:
        _fail(f"no subscriber {email}")
        raise AssertionError
    return sub


def subscribers_add(
    email: str,
    frequency: Annotated[str, typer.Option(help="instant, daily or weekly.")] = "daily",
    hour: Annotated[int, typer.Option(help="Local send hour, 0-23.")] = 8,
    weekday: Annotated[str, typer.Option(help="Weekly send day.")] = "monday",
    timezone: Annotated[str, typer.Option(help="IANA timezone, e.g. Europe/Berlin.")] = "UTC",
    confirmed: Annotated[
        bool, typer.Option("--confirmed", help="Active at once (no double opt-in).")
    ] = False,
) -> None:
    """Add a subscriber (pending until confirmed, unless --confirmed)."""
    addr = _email(email)
    if frequency not in FREQUENCIES:
        _fail(f"invalid frequency {frequency!r}: use one of {', '.join(FREQUENCIES)}")
    wd = _weekday(weekday)
    now = datetime.now(UTC)
    try:
        nxt = next_digest_at(frequency, hour, wd, timezone, now)  # type: ignore[arg-type]
    except ValueError as e:
        _fail(str(e))
        raise
    factory = open_db()
    with transaction(factory) as s:
        if s.scalars(select(m.Subscriber).where(m.Subscriber.email == addr)).first():
            _fail(f"subscriber {addr} exists already")
        sub = m.Subscriber(
            email=addr,
            frequency=frequency,
            send_hour=hour,
            weekday=wd,
            timezone=timezone,
            status="active" if confirmed else "pending",
            next_digest_at=nxt,
            confirmed_at=now if confirmed else None,
        )
        s.add(sub)
        s.flush()
        audit(s, "create", "subscriber", sub.id, None, {"email": addr, "status": sub.status})
    out.print(f"added {addr} ({'active' if confirmed else 'pending'}, {frequency})", markup=False)


def subscribers_list(
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
) -> None:
    """One line per subscriber: email, status, frequency, timezone, rules."""
    factory = open_db()
    with factory() as s:
        q = select(m.Subscriber).order_by(m.Subscriber.email)
        if status:
            q = q.where(m.Subscriber.status == status)
        for sub in s.scalars(q):
            n = len(sub.rules)
            typer.echo(f"{sub.email}\t{sub.status}\t{sub.frequency}\t{sub.timezone}\t{n} rules")


def subscribers_remove(email: str) -> None:
    """Delete a subscriber with their rules, matches and deliveries."""
    addr = _email(email)
    factory = open_db()
    with transaction(factory) as s:
        sub = _subscriber(s, addr)
        audit(s, "delete", "subscriber", sub.id, {"email": sub.email, "status": sub.status}, None)
        for model in (m.Match, m.Delivery, m.Rule, m.SubscriberTopic):
            s.execute(delete(model).where(model.subscriber_id == sub.id))
        s.delete(sub)
        repo.bump_rules_version(s)
    out.print(f"removed {addr}", markup=False)


def subscribers_links(email: str) -> None:
    """Print the subscriber's signed manage, unsubscribe and feed URLs (for support)."""
    settings = get_settings()
    addr = _email(email)
    factory = open_db(settings)
    with factory() as s:
        sub = _subscriber(s, addr)
        links = subscriber_links(
            settings.base_url, settings.effective_secret_key(), sub.id, sub.token_version
        )
    typer.echo(f"manage\t{links.manage}")
    typer.echo(f"unsubscribe\t{links.unsubscribe}")
    typer.echo(f"feed\t{links.feed}")


def _check_rule(query: str) -> str:
    try:
        return to_text(parse(query))
    except RuleError as e:
        _fail(f"invalid rule: {e}", 2)
        raise


def rules_add(
    email: str,
    query: str,
    name: Annotated[str, typer.Option(help="A name shown in emails.")] = "",
) -> None:
    """Add a keyword rule to a subscriber."""
    normalized = _check_rule(query)
    addr = _email(email)
    factory = open_db()
    with transaction(factory) as s:
        sub = _subscriber(s, addr)
        rule = m.Rule(subscriber_id=sub.id, query=query, normalized=normalized, name=name)
        s.add(rule)
        s.flush()
        audit(s, "create", "rule", rule.id, None, {"query": query, "name": name, "email": addr})
        rid = rule.id
    out.print(f"added rule {rid} for {addr}: {normalized}", markup=False)


def rules_list(email: Annotated[str | None, typer.Argument()] = None) -> None:
    """One line per rule: id, email, enabled, name, query."""
    factory = open_db()
    with factory() as s:
        q = (
            select(m.Rule, m.Subscriber.email)
            .join(m.Subscriber)
            .order_by(m.Subscriber.email, m.Rule.id)
        )
        if email:
            q = q.where(m.Subscriber.email == _email(email))
        for rule, addr in s.execute(q):
            on = "enabled" if rule.enabled else "disabled"
            typer.echo(f"{rule.id}\t{addr}\t{on}\t{rule.name}\t{rule.query}")


def rules_preview(
    query: str,
    days: Annotated[int, typer.Option(help="Look back this many days.")] = 7,
) -> None:
    """Papers stored in the last DAYS days that QUERY would have matched, terms highlighted."""
    normalized = _check_rule(query)
    factory = open_db()
    since = datetime.now(UTC) - timedelta(days=days)
    with factory() as s:
        ids = list(s.scalars(select(m.Paper.id).where(m.Paper.first_seen_at >= since)))
        papers = repo.paper_values(s, ids)
    hits = compile_rules([(1, normalized)]).match(papers.values())
    for hit in hits:
        p = papers[hit.paper_id]
        spans = [(h.start, h.end) for h in hit.hits if h.field == "title"]
        typer.echo(f"{p.id}\t{highlight(p.title, spans)}")
        typer.echo(f"\tmatched: {', '.join(hit.terms)}")
    typer.echo(f"{len(hits)} of {len(papers)} papers from the last {days} days match")


def highlight(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with each span wrapped in [brackets] (plain text, so scripts and terminals agree)."""
    out, pos = [], 0
    for start, end in sorted(spans):
        if start < pos:
            continue
        out += [text[pos:start], "[", text[start:end], "]"]
        pos = end
    out.append(text[pos:])
    return "".join(out)


def register(subscribers_app: typer.Typer, rules_app: typer.Typer) -> None:
    subscribers_app.command("add")(subscribers_add)
    subscribers_app.command("list")(subscribers_list)
    subscribers_app.command("remove")(subscribers_remove)
    subscribers_app.command("links")(subscribers_links)
    rules_app.command("add")(rules_add)
    rules_app.command("list")(rules_list)
    rules_app.command("preview")(rules_preview)

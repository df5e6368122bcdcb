"""CLI commands for subscribers and their rules (registered by cli.py)."""

from __future__ import annotations

import calendar
import sys
from datetime import UTC, datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from sqlalchemy import select

from paperalerts.core.rules import compile_rules
from paperalerts.core.subscribers import (
    MAX_RULES,
    Prefs,
    normalize_email,
    parse_prefs,
    subscriber_links,
)
from paperalerts.edges.config import get_settings
from paperalerts.edges.db import models as m
from paperalerts.edges.db import repo
from paperalerts.edges.db.engine import transaction
from paperalerts.faces.cli_console import checked as _checked
from paperalerts.faces.cli_console import checked_rule as _check_rule
from paperalerts.faces.cli_console import fail, out, plural
from paperalerts.faces.cli_db import open_db
from paperalerts.pipeline import subscriptions


def _email(raw: str) -> str:
    with _checked():
        return normalize_email(raw)
    raise AssertionError


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
    now = datetime.now(UTC)
    status = "active" if confirmed else "pending"
    with _checked():
        addr = normalize_email(email)
        prefs = parse_prefs(frequency, hour, weekday, timezone)
        with transaction(open_db()) as s:
            subscriptions.create_subscriber(s, addr, prefs, now, "cli", status=status)
    out.print(f"added {addr} ({status}, {frequency})", markup=False)


def subscribers_set(
    email: str,
    frequency: Annotated[str | None, typer.Option(help="instant, daily or weekly.")] = None,
    hour: Annotated[int | None, typer.Option(help="Local send hour, 0-23.")] = None,
    weekday: Annotated[str | None, typer.Option(help="Weekly send day.")] = None,
    timezone: Annotated[str | None, typer.Option(help="IANA timezone, e.g. Europe/Berlin.")] = None,
    pause: Annotated[
        bool | None, typer.Option("--pause/--resume", help="Pause or resume their email.")
    ] = None,
) -> None:
    """Change a subscriber's schedule (only what is given), then print the new schedule and when
    their next digest goes out."""
    now = datetime.now(UTC)
    with _checked():
        addr = normalize_email(email)
        with transaction(open_db()) as s:
            sub = subscriptions.existing(s, addr)
            before = subscriptions.subscriber_state(sub)
            prefs = parse_prefs(
                frequency or sub.frequency,
                sub.send_hour if hour is None else hour,
                sub.weekday if weekday is None else weekday,
                timezone or sub.timezone,
            )
            subscriptions.update_subscriber(s, sub, now, "cli", prefs=prefs)
            if pause is True and sub.status != "paused":
                subscriptions.pause(s, sub, now, "cli")
            elif pause is False and sub.status != "active":
                subscriptions.resume(s, sub, now, "cli")
            changed = before != subscriptions.subscriber_state(sub)
            status, nxt = sub.status, sub.next_digest_at
    schedule = _describe(prefs)
    next_line = ""
    if prefs.frequency != "instant" and nxt is not None:
        utc = nxt if nxt.tzinfo else nxt.replace(tzinfo=UTC)  # SQLite hands back naive UTC
        local = utc.astimezone(ZoneInfo(prefs.timezone))
        next_line = f"; next digest {local:%a %Y-%m-%d %H:%M} {prefs.timezone}"
    verb = "updated" if changed else "unchanged"
    out.print(f"{verb} {addr}: {status}, {schedule}{next_line}", markup=False)


def _describe(prefs: Prefs) -> str:
    if prefs.frequency == "instant":
        return "instant alerts"
    at = f"{prefs.send_hour:02d}:00 {prefs.timezone}"
    if prefs.frequency == "weekly":
        return f"weekly on {calendar.day_name[prefs.weekday]} at {at}"
    return f"daily at {at}"


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
            rules = plural(len(sub.rules), "rule")
            typer.echo(f"{sub.email}\t{sub.status}\t{sub.frequency}\t{sub.timezone}\t{rules}")


def subscribers_remove(
    email: str,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a subscriber with their rules, matches and deliveries (asks first).

    To stop their email but keep their history, use `subscribers set EMAIL --pause`."""
    factory = open_db()
    with _checked(), factory() as s:
        sub = subscriptions.existing(s, email)
        addr, rules = sub.email, len(sub.rules)
    if not yes:
        what = f"{addr} with {plural(rules, 'rule')}, their matches and deliveries"
        if not sys.stdin.isatty():
            fail(f"removing {what} cannot be undone: add --yes to confirm")
        typer.confirm(f"Remove {what}?", abort=True)
    with _checked(), transaction(factory) as s:
        sub = subscriptions.existing(s, addr)
        subscriptions.delete_subscriber(s, sub, "cli")
    out.print(f"removed {addr}", markup=False)


def subscribers_links(email: str) -> None:
    """Print the subscriber's signed manage, unsubscribe and feed URLs (for support)."""
    settings = get_settings()
    addr = _email(email)
    factory = open_db(settings)
    with _checked(), factory() as s:
        sub = subscriptions.existing(s, addr)
        links = subscriber_links(
            settings.base_url, settings.effective_secret_key(), sub.id, sub.token_version,
            now=datetime.now(UTC),
        )
    typer.echo(f"manage\t{links.manage}")
    typer.echo(f"unsubscribe\t{links.unsubscribe}")
    typer.echo(f"feed\t{links.feed}")


def rules_add(
    email: str,
    query: str,
    name: Annotated[str, typer.Option(help="A name shown in emails.")] = "",
) -> None:
    """Add a keyword rule to a subscriber (checked first; see `register` for the help)."""
    normalized = _check_rule(query)
    with _checked(), transaction(open_db()) as s:
        sub = subscriptions.existing(s, email)
        addr = sub.email
        rid = subscriptions.add_rule(s, sub, query, name, "cli", datetime.now(UTC)).id
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
    typer.echo(
        f"{len(hits)} of {plural(len(papers), 'paper')} from the last {plural(days, 'day')} "
        f"{'matches' if len(hits) == 1 else 'match'}"
    )


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
    subscribers_app.command("set")(subscribers_set)
    subscribers_app.command("list")(subscribers_list)
    subscribers_app.command("remove")(subscribers_remove)
    subscribers_app.command("links")(subscribers_links)
    rules_app.command(
        "add", help=f"Add a keyword rule to a subscriber (checked first; at most {MAX_RULES} "
        "rules each)."
    )(rules_add)
    rules_app.command("list")(rules_list)
    rules_app.command("preview")(rules_preview)

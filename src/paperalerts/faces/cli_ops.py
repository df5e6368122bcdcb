"""CLI commands that run the pipeline: tick (one cycle), digests send/preview, worker, beat."""

from __future__ import annotations

import os
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.edges.config import get_settings
from paperalerts.edges.db import models as m
from paperalerts.edges.fetch import Fetcher
from paperalerts.edges.mailer import mailer_from_settings
from paperalerts.faces.cli_console import fail
from paperalerts.faces.cli_db import open_db
from paperalerts.faces.cli_mailbox import configured_mailbox, summary
from paperalerts.faces.step_config import delivery_config, health_config
from paperalerts.pipeline import dispatch_due_digests, run_cycle, send_due
from paperalerts.pipeline.compose import render_matches

digests_help = "Build and send digests."


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def tick() -> None:
    """One scheduler cycle in-process: due scrapes, matching, due digests, sending, sweep."""
    from paperalerts.faces.cli_console import quiet_step_logs

    quiet_step_logs()
    settings = get_settings()
    factory = open_db(settings)
    mailer = mailer_from_settings(settings)
    try:
        with Fetcher.from_settings(settings) as fetcher, configured_mailbox(settings) as box:
            out = run_cycle(
                factory,
                fetcher=fetcher,
                mailer=mailer,
                cfg=delivery_config(settings),
                clock=_wall_clock,
                failing_after=settings.failing_after,
                health=health_config(settings),
                mailbox=box,
            )
    finally:
        mailer.close()
    for o in out.scrapes:
        detail = f"{o.status}: {o.reason}" if o.reason else o.status
        typer.echo(f"scrape\t{o.source}\t{detail}\t{len(o.new)} new\t{o.updated} updated")
    matched = out.matched
    typer.echo(
        f"match\t{matched.events if matched else 0} events\t"
        f"{matched.matches if matched else 0} matches"
    )
    counts = Counter(s.status for s in out.sends)
    typer.echo(
        f"deliver\t{len(out.dispatched)} dispatched\t{counts['sent']} sent\t"
        f"{counts['retry']} retry\t{counts['failed']} failed"
    )
    if out.mailbox is not None:
        typer.echo(summary(out.mailbox))


def digests_send(
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Show who is due with how many papers; change nothing."),
    ] = False,
    to: Annotated[
        str | None,
        typer.Option(
            "--to", help="Send this subscriber's waiting papers now, whatever their schedule."
        ),
    ] = None,
) -> None:
    """Create due deliveries and send them (plus any the sweep finds). With --to EMAIL, send
    that subscriber's waiting papers now instead."""
    settings = get_settings()
    factory = open_db(settings)
    cfg = delivery_config(settings)
    now = datetime.now(UTC)
    if dry_run:
        _dry_run(factory, cfg.send_empty, now, to)
        return
    if to is not None:
        ids = _dispatch_to(factory, to, now)
    else:
        ids = dispatch_due_digests(factory, cfg, now=now)
    mailer = mailer_from_settings(settings)
    try:
        outs = send_due(factory, ids, mailer=mailer, cfg=cfg, clock=_wall_clock)
    finally:
        mailer.close()
    for o in outs:
        typer.echo(f"{o.delivery_id}\t{o.status}\t{o.detail}")
    c = Counter(o.status for o in outs)
    typer.echo(f"{len(ids)} dispatched, {c['sent']} sent, {c['retry']} retry, {c['failed']} failed")


def _subscriber_by_email(s: Session, raw: str) -> m.Subscriber:
    from paperalerts.core.subscribers import InvalidAddress, normalize_email
    from paperalerts.faces.cli_console import fail

    try:
        addr = normalize_email(raw)
    except InvalidAddress as e:
        fail(str(e))
    sub = s.scalars(select(m.Subscriber).where(m.Subscriber.email == addr)).first()
    if sub is None:
        fail(f"no subscriber {addr}")
    return sub


def _dispatch_to(factory: sessionmaker[Session], email: str, now: datetime) -> list[int]:
    from paperalerts.faces.cli_console import fail
    from paperalerts.pipeline.deliver_now import NotSendable, dispatch_now

    with factory() as s:
        sub = _subscriber_by_email(s, email)
        sub_id, addr = sub.id, sub.email
    try:
        did, _papers = dispatch_now(factory, sub_id, now=now)
    except NotSendable as e:
        fail(f"{addr}: {e}")
    if did is None:
        typer.echo(f"nothing waiting for {addr}: no digest sent", err=True)
        return []
    return [did]


def _dry_run(
    factory: sessionmaker[Session], send_empty: bool, now: datetime, to: str | None
) -> None:
    """Who is due now, one tab-separated line each (email, frequency, papers); when nobody is,
    say so on stderr with who comes next and when, so an empty answer is never a puzzle."""
    with factory() as s:
        pending = Counter(
            s.scalars(select(m.Match.subscriber_id).where(m.Match.delivery_id.is_(None)))
        )
        q = select(m.Subscriber).where(m.Subscriber.status == "active")
        if to is not None:
            q = q.where(m.Subscriber.id == _subscriber_by_email(s, to).id)
        due_any = False
        upcoming: list[tuple[datetime, m.Subscriber]] = []
        for sub in s.scalars(q.order_by(m.Subscriber.email)):
            due = to is not None or sub.frequency == "instant" or (
                sub.next_digest_at is not None and _utc(sub.next_digest_at) <= now
            )
            if due and (pending[sub.id] or (send_empty and to is None)):
                due_any = True
                typer.echo(f"{sub.email}\t{sub.frequency}\t{pending[sub.id]} papers")
            elif sub.frequency != "instant" and sub.next_digest_at is not None:
                upcoming.append((_utc(sub.next_digest_at), sub))
        if due_any:
            return
        waiting = sum(pending.values())
        if not upcoming:
            typer.echo(f"nobody is due now ({waiting} matched papers waiting)", err=True)
            return
        at, nxt = min(upcoming, key=lambda u: (u[0], u[1].email))
        local = at.astimezone(ZoneInfo(nxt.timezone))
        typer.echo(
            f"nobody is due now; next: {nxt.email} ({nxt.frequency}) at "
            f"{local:%a %Y-%m-%d %H:%M} {nxt.timezone} ({_until(at - now)}), "
            f"{pending[nxt.id]} papers waiting for them",
            err=True,
        )


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)  # SQLite hands back naive UTC


def _until(delta: timedelta) -> str:
    minutes = max(0, int(delta.total_seconds() // 60))
    if minutes < 60:
        return f"in {minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"in {hours} h {minutes} min" if hours < 48 else f"in {hours // 24} days"


def digests_preview(
    email: str,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write the HTML part here.")
    ] = None,
) -> None:
    """Render the digest EMAIL would get now from their undelivered matches (sends nothing)."""
    from paperalerts.core.subscribers import InvalidAddress, normalize_email

    settings = get_settings()
    try:
        addr = normalize_email(email)
    except InvalidAddress as e:
        fail(str(e))
    factory = open_db(settings)
    cfg = delivery_config(settings)
    with factory() as s:
        sub = s.scalars(select(m.Subscriber).where(m.Subscriber.email == addr)).first()
        if sub is None:
            fail(f"no subscriber {addr}")
        rows = list(
            s.scalars(
                select(m.Match)
                .where(m.Match.subscriber_id == sub.id, m.Match.delivery_id.is_(None))
                .order_by(m.Match.id)
            )
        )
        rendered = render_matches(
            s, sub, rows, cfg, datetime.now(UTC), online_url=f"{cfg.base_url.rstrip('/')}/manage"
        )
    typer.echo(f"Subject: {rendered.subject}\n")
    typer.echo(rendered.text)
    if html is not None:
        html.write_text(rendered.html, encoding="utf-8")


def worker(
    queues: Annotated[
        str,
        typer.Option(
            help="Comma-separated queues (tick, scrape, match, mail). Give the tick a worker of "
            "its own (--queues tick --concurrency 1) and the others scrape,match,mail, so long "
            "tasks never make the scheduler wait."
        ),
    ] = "tick,scrape,match,mail",
    concurrency: Annotated[int, typer.Option(help="Worker processes.")] = 2,
    loglevel: Annotated[str, typer.Option(help="Log level.")] = "info",
    name: Annotated[str | None, typer.Option(
        "--name", "-n",
        help="Node name (%h = host name); default PAPERALERTS_WORKER_NAME, else "
        "paperalerts-<pid>@<host>.")] = None,
) -> None:
    """Run a Celery worker (add more of them to scale out)."""
    from paperalerts.edges.mailer import check_lease
    from paperalerts.errors import ConfigError

    try:
        check_lease(get_settings())
    except ConfigError as e:
        fail(str(e))
    open_db()  # the installation must exist: a worker never starts a second, empty one
    from paperalerts.faces.tasks import app

    app.worker_main(["worker", "-Q", queues, "-c", str(concurrency), "-l", loglevel,
                     "-n", worker_node_name(name, get_settings().worker_name, os.getpid())])


def worker_node_name(given: str | None, setting: str, pid: int) -> str:
    """The worker's Celery node name: `given`, else the setting, else ``paperalerts-PID@%h``.
    Celery's own default, ``celery@host``, is the same for every worker on a host, so control
    commands and monitoring could not tell two apart (DuplicateNodenameWarning)."""
    return given or setting or f"paperalerts-{pid}@%h"


def beat(
    loglevel: Annotated[str, typer.Option(help="Log level.")] = "info",
    schedule: Annotated[Path, typer.Option(help="Beat's schedule file.")] = Path(
        "celerybeat-schedule"
    ),
) -> None:
    """Run the scheduler (exactly one per installation): a tick every minute, the first at
    once."""
    open_db()  # the installation must exist: its embedded broker lives beside the database
    from paperalerts.faces.tasks import app, beat_fanout

    # Beat's first run of an interval comes one interval after it starts: a tick now means a
    # fresh `run` scrapes and reports at once. A doubled tick is harmless (claims in the DB).
    beat_fanout.delay()

    app.start(["beat", "-l", loglevel, "-s", str(schedule)])


def register(app: typer.Typer, digests_app: typer.Typer) -> None:
    app.command("tick")(tick)
    app.command("worker")(worker)
    app.command("beat")(beat)
    digests_app.command("send")(digests_send)
    digests_app.command("preview")(digests_preview)

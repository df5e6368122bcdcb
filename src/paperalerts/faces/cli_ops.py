"""CLI commands that run the pipeline: tick, digests send/preview, worker, beat."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import select

from paperalerts.edges.config import get_settings
from paperalerts.edges.db import models as m
from paperalerts.edges.fetch import Fetcher
from paperalerts.edges.mailer import mailer_from_settings
from paperalerts.faces.cli_db import open_db
from paperalerts.pipeline import DeliveryConfig, dispatch_due_digests, send_due
from paperalerts.pipeline import tick as run_tick
from paperalerts.pipeline.deliver import render_matches
from paperalerts.pipeline.health_alerts import HealthConfig

digests_help = "Build and send digests."


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def tick() -> None:
    """One beat tick in-process: due scrapes, matching, due digests, sending, sweep."""
    settings = get_settings()
    factory = open_db(settings)
    mailer = mailer_from_settings(settings)
    try:
        with Fetcher.from_settings(settings) as fetcher:
            out = run_tick(
                factory,
                fetcher=fetcher,
                mailer=mailer,
                cfg=DeliveryConfig.from_settings(settings),
                clock=_wall_clock,
                failing_after=settings.failing_after,
                health=HealthConfig.from_settings(settings),
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


def digests_send(
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Show who is due with how many papers; change nothing."),
    ] = False,
) -> None:
    """Create due deliveries and send them (plus any the sweep finds)."""
    settings = get_settings()
    factory = open_db(settings)
    cfg = DeliveryConfig.from_settings(settings)
    now = datetime.now(UTC)
    if dry_run:
        with factory() as s:
            pending = Counter(
                s.scalars(select(m.Match.subscriber_id).where(m.Match.delivery_id.is_(None)))
            )
            for sub in s.scalars(
                select(m.Subscriber)
                .where(m.Subscriber.status == "active")
                .order_by(m.Subscriber.email)
            ):
                due = sub.frequency == "instant" or (
                    sub.next_digest_at is not None and sub.next_digest_at <= now
                )
                if due and (pending[sub.id] or cfg.send_empty):
                    typer.echo(f"{sub.email}\t{sub.frequency}\t{pending[sub.id]} papers")
        return
    mailer = mailer_from_settings(settings)
    try:
        ids = dispatch_due_digests(factory, cfg, now=now)
        outs = send_due(factory, ids, mailer=mailer, cfg=cfg, clock=_wall_clock)
    finally:
        mailer.close()
    for o in outs:
        typer.echo(f"{o.delivery_id}\t{o.status}\t{o.detail}")
    c = Counter(o.status for o in outs)
    typer.echo(f"{len(ids)} dispatched, {c['sent']} sent, {c['retry']} retry, {c['failed']} failed")


def digests_preview(
    email: str,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write the HTML part here.")
    ] = None,
) -> None:
    """Render the digest EMAIL would get now from their undelivered matches (sends nothing)."""
    from paperalerts.core.subscribers import InvalidAddress, normalize_email
    from paperalerts.faces.cli import fail

    settings = get_settings()
    try:
        addr = normalize_email(email)
    except InvalidAddress as e:
        fail(str(e))
    factory = open_db(settings)
    cfg = DeliveryConfig.from_settings(settings)
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
    queues: Annotated[str, typer.Option(help="Comma-separated queues.")] = "scrape,match,mail",
    concurrency: Annotated[int, typer.Option(help="Worker processes.")] = 2,
    loglevel: Annotated[str, typer.Option(help="Log level.")] = "info",
) -> None:
    """Run a Celery worker (add more of them to scale out)."""
    from paperalerts.faces.tasks import app

    app.worker_main(["worker", "-Q", queues, "-c", str(concurrency), "-l", loglevel])


def beat(
    loglevel: Annotated[str, typer.Option(help="Log level.")] = "info",
    schedule: Annotated[Path, typer.Option(help="Beat's schedule file.")] = Path(
        "celerybeat-schedule"
    ),
) -> None:
    """Run the scheduler (exactly one per installation): a tick every minute."""
    from paperalerts.faces.tasks import app

    app.start(["beat", "-l", loglevel, "-s", str(schedule)])


def register(app: typer.Typer, digests_app: typer.Typer) -> None:
    app.command("tick")(tick)
    app.command("worker")(worker)
    app.command("beat")(beat)
    digests_app.command("send")(digests_send)
    digests_app.command("preview")(digests_preview)

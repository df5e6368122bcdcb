"""CLI commands for running and watching the service: ``run``, ``demo [--serve]``, ``status``."""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy.engine import make_url

from paperalerts.core.health import HealthReport, report_json
from paperalerts.edges.config import Settings, get_settings
from paperalerts.faces.cli_console import fail, out


def _data_dir(settings: Settings) -> Path:
    """Where run-time files go: beside a SQLite database, else the working directory."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).resolve().parent
    return Path.cwd()


def default_base_url(settings: Settings, host: str, port: int) -> str | None:
    """The address links in emails should use when `run` serves on `host`:`port` and
    PAPERALERTS_BASE_URL was not set (None when it was): the setting's default names port 8000,
    so without this a confirm link from ``run --port 8765`` led nowhere."""
    if "base_url" in settings.model_fields_set:
        return None
    name = "localhost" if host in ("", "0.0.0.0", "::") else host
    return f"http://[{name}]:{port}" if ":" in name else f"http://{name}:{port}"


def run(
    host: Annotated[str, typer.Option(help="Interface the web app listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port the web app listens on.")] = 8000,
    concurrency: Annotated[int, typer.Option(help="Worker processes.")] = 2,
    no_defaults: Annotated[
        bool, typer.Option("--no-defaults", help="Add no default sources to a new database.")
    ] = False,
    loglevel: Annotated[str, typer.Option(help="Log level of the children.")] = "info",
    grace: Annotated[float, typer.Option(help="Seconds children get to stop.")] = 30.0,
) -> None:
    """Web + worker + beat in one command: the laptop install.

    Embedded defaults: SQLite, a broker that needs no server, SMTP_URL or .eml files. Migrates
    the database first. Ctrl-C stops cleanly."""
    from paperalerts.edges.broker import configured_broker_url, prune_consumed
    from paperalerts.edges.mailer import check_lease
    from paperalerts.errors import ConfigError
    from paperalerts.faces.cli_db import init
    from paperalerts.faces.runner import Supervisor, child_specs

    settings = get_settings()
    try:
        check_lease(settings)
    except ConfigError as e:
        fail(str(e))
    init(no_defaults=no_defaults)
    broker = configured_broker_url(settings)
    try:
        pruned = prune_consumed(broker)
    except Exception as e:  # the broker file may be unreadable; the worker will say so too
        fail(f"cannot open the broker {broker}: {e}")
    schedule = _data_dir(settings) / "celerybeat-schedule"
    mail = settings.smtp_url.split("@")[-1] if settings.smtp_url else f"{settings.outbox_dir}/"
    links = default_base_url(settings, host, port)
    # The children read their settings from the environment; this one they must share.
    env = None if links is None else {**os.environ, "PAPERALERTS_BASE_URL": links}
    out.print(f"web     http://{host}:{port}  (/healthz, /metrics, /admin)", markup=False)
    out.print(f"links   {links or settings.base_url}  (PAPERALERTS_BASE_URL)", markup=False)
    out.print(
        f"broker  {broker}" + (f"  ({pruned} consumed messages pruned)" if pruned else ""),
        markup=False,
    )
    out.print(f"mail    {mail}", markup=False)
    out.print(
        f"beat    every {settings.tick_seconds:g}s, on a worker of its own; Ctrl-C stops",
        markup=False,
    )
    supervisor = Supervisor(
        child_specs(
            host=host, port=port, concurrency=concurrency, loglevel=loglevel, schedule=schedule
        ),
        env=env,
        grace=grace,
        on_idle=_housekeeping(settings, broker),
        say=lambda line: out.print(f"run: {line}", markup=False),
    )
    code = supervisor.run()
    raise typer.Exit(code)


def _housekeeping(settings: Settings, broker: str) -> Callable[[], None]:
    """Once a minute in `run`: prune the embedded broker and run the operator health check (so a
    wedged worker or beat is reported even when nothing polls /healthz)."""
    from paperalerts.edges.broker import prune_consumed
    from paperalerts.edges.db import make_engine, session_factory
    from paperalerts.edges.mailer import mailer_from_settings
    from paperalerts.faces.step_config import health_config
    from paperalerts.pipeline.health import check_health

    factory = session_factory(make_engine(settings.database_url))
    cfg = health_config(settings)

    def housekeep() -> None:
        prune_consumed(broker)
        mailer = mailer_from_settings(settings)
        try:
            check_health(factory, mailer, cfg, datetime.now(UTC))
        finally:
            mailer.close()

    return housekeep


def demo(
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Keep the demo's database and mail here (default: a temp dir)."),
    ] = None,
    serve: Annotated[
        bool, typer.Option("--serve", help="Keep the admin running afterwards; print a login.")
    ] = False,
) -> None:
    """The whole mission offline in seconds, on invented papers.

    Local sources (two days), subscribers with rules, scrape -> diff -> match -> digest -> SMTP
    into a local mail server; prints a summary."""
    from paperalerts.faces.demo.run import Demo

    if directory is not None and (directory / "demo.db").exists():
        fail(f"{directory} holds a demo already; give an empty or new --dir")
    workdir = directory or Path(tempfile.mkdtemp(prefix="paperalerts-demo-"))
    with Demo(workdir, out) as d:
        summary = d.run()
        print_summary(summary)
        if serve:
            _serve(d)


def print_summary(summary: object) -> None:
    """The demo's summary: totals, a table per subscriber, the saved email's paths."""
    from paperalerts.faces.demo.run import DemoSummary

    assert isinstance(summary, DemoSummary)
    out.print()
    out.print(
        f"[bold]papers seen[/] {summary.papers_seen}   [bold]entries fetched[/] "
        f"{summary.entries_fetched}   [bold]new on day 2[/] {summary.new_papers}   "
        f"[bold]updated[/] {summary.updated_papers}   [bold]emails sent[/] "
        f"{summary.emails_sent}   [dim]({summary.seconds:.1f}s)[/]"
    )
    table = Table(title="Matched per subscriber (day 2)", title_justify="left")
    table.add_column("subscriber")
    table.add_column("rules", justify="right")
    table.add_column("matched", justify="right")
    table.add_column("emails", justify="right")
    table.add_column("papers")
    for r in summary.subscribers:
        table.add_row(
            escape(r.email),
            str(r.rules),
            str(len(r.papers)),
            str(r.emails),
            " ".join(r.papers) or "-",
        )
    out.print(table)
    if summary.eml_path is not None:
        out.print(f"one received email: {summary.eml_path}", markup=False)
        out.print(f"its HTML part:      {summary.html_path}", markup=False)
    out.print(f"demo database:      {summary.workdir / 'demo.db'}", markup=False)


def _serve(d: object) -> None:
    """Serve the admin over the demo's database until Ctrl-C, with a fresh random login."""
    import uvicorn

    from paperalerts.edges.db import transaction
    from paperalerts.faces.demo.run import Demo
    from paperalerts.faces.web import create_app
    from paperalerts.faces.web.auth import upsert_admin

    assert isinstance(d, Demo) and d.settings is not None and d.factory is not None
    password = secrets.token_urlsafe(12)
    with transaction(d.factory) as s:
        upsert_admin(s, "admin", password)
    d.sink.save_dir = d.workdir / "mail" / "inbox"
    app = create_app(d.settings, session_factory=d.factory)
    out.print()
    out.print(f"admin:  {d.web_url}/admin   login: admin / {password}", markup=False)
    out.print(f"mail the demo sends now lands in {d.sink.save_dir}/  (Ctrl-C stops)", markup=False)
    uvicorn.run(app, host="127.0.0.1", port=d.web_port, log_level="warning",
                proxy_headers=False)


def status(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
    max_tick_age: Annotated[
        float | None,
        typer.Option(
            help="Only check the scheduler: exit 1 when its last run is older than this many "
            "seconds (or it never ran), else 0. A healthcheck for beat and its workers."
        ),
    ] = None,
) -> None:
    """Is it working? Sources' health, queues, last tick, last 24 h, deliveries being sent,
    stuck deliveries and open incidents; --json for monitoring scripts.

    Exits 1 when attention is needed (an open incident or a stuck delivery), else 0."""
    from paperalerts.edges.broker import configured_broker_url, queue_depths
    from paperalerts.faces.cli_db import open_db
    from paperalerts.faces.step_config import health_config
    from paperalerts.pipeline.health import collect_report

    settings = get_settings()
    try:
        cfg = health_config(settings)
    except ValueError as e:
        fail(str(e))
        raise
    factory = open_db(settings)
    queues = queue_depths(configured_broker_url(settings))
    report = collect_report(factory, cfg, datetime.now(UTC), queues)
    if as_json:
        typer.echo(json.dumps(report_json(report), indent=2))
    else:
        print_report(report)
    age = report.heartbeat_age
    if max_tick_age is not None:
        raise typer.Exit(int(age is None or age.total_seconds() > max_tick_age))
    raise typer.Exit(0 if report.ok else 1)


def _ago(delta: timedelta | None) -> str:
    if delta is None:
        return "never"
    s = int(delta.total_seconds())
    if s < 120:
        return f"{s}s ago"
    if s < 7200:
        return f"{s // 60}m ago"
    if s < 172800:
        return f"{s // 3600}h ago"
    return f"{s // 86400}d ago"


def _when(t: datetime | None, now: datetime) -> str:
    return "never" if t is None else f"{t:%Y-%m-%d %H:%M} ({_ago(now - t)})"


def print_report(report: HealthReport) -> None:
    """`status` for people."""
    now = report.now
    verdict = "[green]ok[/]" if report.ok else "[red]attention needed[/]"
    out.print(f"[bold]paperalerts status[/] at {now:%Y-%m-%d %H:%M:%S} UTC: {verdict}")
    out.print(f"scheduler   last ran {_when(report.last_heartbeat, now)}", markup=False)
    if report.queue_error:
        queues = f"unavailable ({report.queue_error})"
    else:
        queues = (
            "  ".join(f"{q} {'n/a' if n is None else n}" for q, n in report.queues.items()) or "n/a"
        )
    out.print(f"queues      {queues}  [{report.queue_kind} broker]", markup=False)
    out.print(
        "last 24 h   " + " -> ".join(f"{k} {v}" for k, v in report.counts.pairs()), markup=False
    )
    table = Table(title="Sources", title_justify="left")
    for col in (
        "name",
        "kind",
        "enabled",
        "health",
        "failures",
        "last success",
        "entries",
        "last error",
    ):
        table.add_column(col)
    for src in report.sources:
        verdict = src.verdict  # a source that never worked shows "failing", not its stored word
        color = {"ok": "green", "degraded": "yellow", "failing": "red"}.get(verdict, "white")
        table.add_row(
            escape(src.name),
            src.kind,
            "yes" if src.enabled else "no",
            f"[{color}]{verdict}[/]",
            str(src.consecutive_failures),
            _when(src.last_success_at, now),
            "-" if src.last_entry_count is None else str(src.last_entry_count),
            escape(src.last_error or "-"),  # whole: the cause is at the end
        )
    out.print(table)
    out.print(
        f"sending     {report.in_flight} in flight (lease running), "
        f"{report.expired_leases} with an expired lease (the sweep hands them out again)",
        markup=False,
    )
    if report.stuck:
        stuck = Table(title="Stuck deliveries", title_justify="left")
        for col in ("id", "subscriber", "kind", "status", "attempts", "since", "last error"):
            stuck.add_column(col)
        for d in report.stuck:
            stuck.add_row(
                str(d.id),
                escape(d.subscriber),
                d.kind,
                d.status,
                str(d.attempts),
                _when(d.since, now),
                escape(d.last_error or "-"),
            )
        out.print(stuck)
    else:
        out.print("stuck deliveries: none")
    if report.incidents:
        for i in report.incidents:
            out.print(f"[red]incident[/] {escape(i.title)}")
    else:
        out.print("incidents: none")


def register(app: typer.Typer) -> None:
    """Attach `run`, `demo` and `status` to the main app."""
    app.command("run")(run)
    app.command("demo")(demo)
    app.command("status")(status)

"""CLI commands over the database: init, sources, scrape (registered by cli.py)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.core import sources as source_kinds
from paperalerts.core.defaults import DEFAULT_SOURCES
from paperalerts.core.intervals import format_interval, parse_interval
from paperalerts.edges.config import Settings, get_settings
from paperalerts.edges.db import (
    current_revision,
    head_revision,
    make_engine,
    repo,
    session_factory,
    upgrade,
)
from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction

sources_app = typer.Typer(no_args_is_help=True, help="Manage the watched sources.")


def open_db(settings: Settings | None = None) -> sessionmaker[Session]:
    """A session factory on the configured database; refuses an uninitialised or old schema."""
    from paperalerts.faces.cli import fail

    settings = settings or get_settings()
    engine = make_engine(settings.database_url)
    try:
        current = current_revision(engine)
    except Exception as e:  # any driver error becomes one clear line
        fail(f"cannot open the database {settings.database_url}: {e}")
    if current is None:
        fail("the database is not initialised: run `paperalerts init`")
    if current != head_revision(engine):
        fail(f"the database schema is at {current}, not the latest: run `paperalerts init`")
    return session_factory(engine)


def now_utc() -> datetime:
    return datetime.now(UTC)


def init(
    no_defaults: Annotated[bool, typer.Option("--no-defaults", help="Add no sources.")] = False,
) -> None:
    """Create or upgrade the database; add the default sources unless told not to."""
    from paperalerts.faces.cli import fail, out

    settings = get_settings()
    engine = make_engine(settings.database_url)
    try:
        before = current_revision(engine)
        upgrade(engine)
    except Exception as e:  # one clear line instead of a traceback
        fail(f"cannot initialise {settings.database_url}: {e}")
    after = current_revision(engine)
    verb = "created" if before is None else ("upgraded" if before != after else "up to date")
    out.print(f"database {verb} at revision {after} ({settings.database_url})")
    if no_defaults:
        return
    added = []
    with transaction(session_factory(engine)) as s:
        for d in DEFAULT_SOURCES:
            if repo.source_by_name(s, d.name) is None:
                s.add(m.Source(name=d.name, kind=d.kind, url=d.url, every_seconds=d.every_seconds))
                added.append(d.name)
    if added:
        out.print(f"added default sources: {', '.join(added)}")


@sources_app.command("add")
def sources_add(
    name: str,
    kind: Annotated[str, typer.Argument(help=f"One of: {', '.join(source_kinds.KINDS)}")],
    url: str,
    every: Annotated[str, typer.Option(help="How often to scrape, e.g. 30m, 2h.")] = "30m",
    backfill: Annotated[
        bool, typer.Option("--backfill", help="Alert on the first scrape's papers too.")
    ] = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check/--no-check", help="Fetch the URL once and parse it as KIND before adding."
        ),
    ] = True,
) -> None:
    """Add a source to watch. The URL is fetched once and parsed as KIND first (--no-check
    skips that, e.g. for a source that is down right now)."""
    from paperalerts.faces.cli import fail, out

    if kind not in source_kinds.KINDS:
        fail(f"unknown source kind {kind!r}: use one of {', '.join(source_kinds.KINDS)}")
    if not url.startswith(("http://", "https://")):
        fail(f"source URL must be http(s): {url!r}")
    try:
        seconds = parse_interval(every)
    except ValueError as e:
        fail(str(e))
    settings = get_settings()
    factory = open_db(settings)
    with factory() as s:
        if repo.source_by_name(s, name) is not None:
            fail(f"a source named {name!r} exists already")
    if check:
        found = _check_source(settings, kind, url)
        out.print(f"checked {url}: {found} entries parse as {kind}", markup=False)
    with transaction(factory) as s:
        if repo.source_by_name(s, name) is not None:
            fail(f"a source named {name!r} exists already")
        s.add(m.Source(name=name, kind=kind, url=url, every_seconds=seconds, backfill=backfill))
    out.print(f"added source {name} ({kind}, every {format_interval(seconds)})")


def _check_source(settings: Settings, kind: str, url: str) -> int:
    """Fetch `url` once and parse it as `kind`; the number of entries, or one clear error line
    that says what to do (the SSRF guard's refusal names the setting that lifts it)."""
    from paperalerts.edges.fetch import Fetcher
    from paperalerts.errors import FetchError, ParseError
    from paperalerts.faces.cli import fail

    try:
        with Fetcher.from_settings(settings) as fetcher:
            body = fetcher.fetch(url).body
    except FetchError as e:
        hint = ""
        if "non-public address" in str(e) and not settings.allow_private_urls:
            hint = (" (a source on this machine or your network needs "
                    "PAPERALERTS_ALLOW_PRIVATE_URLS=true)")
        fail(f"cannot add {url}: {e}{hint}; --no-check adds it without fetching")
    try:
        papers = source_kinds.parse(kind, body, url)
    except ParseError as e:
        fits = [k for k in source_kinds.KINDS if k != kind and _parses(k, body, url)]
        guess = f"; it parses as {' or '.join(fits)}" if fits else ""
        fail(f"{url} is not a {kind} page: {e}{guess}")
    return len(papers)


def _parses(kind: str, body: bytes, url: str) -> bool:
    from paperalerts.errors import ParseError

    try:
        return bool(source_kinds.parse(kind, body, url))
    except ParseError:
        return False


@sources_app.command("remove")
def sources_remove(
    name: str,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove a source and its memory (snapshots, which papers it listed); papers and
    subscribers' matches stay. To stop scraping but keep its memory, use `sources disable`."""
    from paperalerts.faces.cli import fail, out

    factory = open_db()
    with factory() as s:
        if repo.source_by_name(s, name) is None:
            fail(f"no source named {name!r}")
    if not yes:
        if not sys.stdin.isatty():
            fail(f"removing {name} forgets what it listed: add --yes to confirm")
        typer.confirm(f"Remove {name} and forget what it listed?", abort=True)
    with transaction(factory) as s:
        src = repo.source_by_name(s, name)
        if src is None:
            fail(f"no source named {name!r}")
        counts = repo.delete_source(s, src, "cli")
    out.print(
        f"removed source {name} ({counts['snapshots']} snapshots, "
        f"{counts['paper_sources']} listed papers forgotten; papers kept)",
        markup=False,
    )


@sources_app.command("list")
def sources_list() -> None:
    """One line per source, tab-separated: name, kind, every, enabled, health, last success,
    entries last time, consecutive failures, url, last error."""
    factory = open_db()
    typer.echo(
        "name\tkind\tevery\tenabled\thealth\tlast_success\tentries\tfailures\turl\tlast_error"
    )
    with factory() as s:
        for src in s.scalars(select(m.Source).order_by(m.Source.name)):
            cells = [
                src.name,
                src.kind,
                format_interval(src.every_seconds),
                "yes" if src.enabled else "no",
                src.health,
                src.last_success_at.isoformat(timespec="seconds") if src.last_success_at else "-",
                "-" if src.last_entry_count is None else str(src.last_entry_count),
                str(src.consecutive_failures),
                src.url,
                (src.last_error or "-").replace("\t", " ").replace("\n", " "),
            ]
            typer.echo("\t".join(cells))


def _set_enabled(name: str, enabled: bool) -> None:
    from paperalerts.faces.cli import fail, out

    factory = open_db()
    with transaction(factory) as s:
        src = repo.source_by_name(s, name)
        if src is None:
            fail(f"no source named {name!r}")
        src.enabled = enabled
    out.print(f"{'enabled' if enabled else 'disabled'} {name}")


@sources_app.command("enable")
def sources_enable(name: str) -> None:
    """Enable a source."""
    _set_enabled(name, True)


@sources_app.command("disable")
def sources_disable(name: str) -> None:
    """Disable a source (its papers stay)."""
    _set_enabled(name, False)


def scrape(
    names: Annotated[list[str] | None, typer.Argument(help="Sources; default all enabled.")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="Parse this saved page instead of fetching.")
    ] = None,
) -> None:
    """Scrape sources now; print new/updated counts and new titles; exit 1 if any was rejected."""
    from paperalerts.edges.fetch import Fetcher
    from paperalerts.faces.cli import fail, out, quiet_step_logs
    from paperalerts.pipeline import scrape_source

    quiet_step_logs()
    settings = get_settings()
    factory = open_db(settings)
    with factory() as s:
        if names:
            rows = []
            for n in names:
                src = repo.source_by_name(s, n)
                if src is None:
                    fail(f"no source named {n!r}")
                rows.append(src)
        else:
            rows = list(s.scalars(select(m.Source).where(m.Source.enabled.is_(True))))
        ids = [(r.id, r.name) for r in rows]
    if file is not None and len(ids) != 1:
        fail("--file needs exactly one source name")
    body = None
    if file is not None:
        try:
            body = file.read_bytes()
        except OSError as e:
            fail(f"cannot read {file}: {e.strerror}")
    any_rejected = False
    with Fetcher.from_settings(settings) as fetcher:
        for sid, _name in ids:
            o = scrape_source(
                factory,
                sid,
                fetcher=fetcher,
                now=now_utc(),
                body=body,
                failing_after=settings.failing_after,
            )
            if o.rejected:
                any_rejected = True
                out.print(f"{o.source}: {o.status}: {o.reason}", markup=False)
            elif o.status == "unchanged":
                out.print(f"{o.source}: unchanged (not modified)")
            elif o.status == "quiet":
                out.print(f"{o.source}: quiet day ({o.reason})")
            elif o.baseline:
                out.print(
                    f"{o.source}: baseline: {o.entry_count} entries stored, "
                    f"{o.stored_new} papers new to the database (no alerts)"
                )
            else:
                out.print(
                    f"{o.source}: {len(o.new)} new, {o.updated} updated ({o.entry_count} entries)"
                )
                for pid, title in o.new:
                    out.print(f"  + {pid}  {title}", markup=False)
    if any_rejected:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the main app."""
    app.command("init")(init)
    app.command("scrape")(scrape)
    app.add_typer(sources_app, name="sources")

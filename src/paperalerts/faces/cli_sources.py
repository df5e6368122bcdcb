"""CLI: the watched sources (add, set, list, enable, disable, remove, preview) and `scrape`;
changes go through `pipeline.source_changes`, audited as the admin's are."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.core import sources as source_kinds
from paperalerts.core.intervals import format_interval, parse_interval
from paperalerts.core.sources import html_list
from paperalerts.edges.config import Settings, get_settings
from paperalerts.edges.db import models as m
from paperalerts.edges.db import repo
from paperalerts.edges.db.engine import transaction
from paperalerts.errors import FetchError, ParseError
from paperalerts.faces.cli_console import checked, fail, out, plural, quiet_step_logs
from paperalerts.faces.cli_db import now_utc, open_db
from paperalerts.pipeline import source_changes
from paperalerts.pipeline.scrape import ScrapeOutcome
from paperalerts.pipeline.source_check import SourceCheckFailed, check_source_page

sources_app = typer.Typer(no_args_is_help=True, help="Manage the watched sources.")

SelectorOption = Annotated[
    list[str] | None,
    typer.Option(
        "--selector",
        help="html sources: FIELD=CSS, repeated; fields item, title, link (required), "
        "id, abstract, authors. CSS may end in @attribute.",
    ),
]


def selectors_from_flags(flags: Sequence[str]) -> html_list.Selectors:
    """``FIELD=CSS`` flags -> checked selectors; exits with an error naming the bad one."""
    raw: dict[str, str] = {}
    for flag in flags:
        field, sep, css = flag.partition("=")
        if not sep:
            fail(f"--selector {flag!r}: expected FIELD=CSS, e.g. item=article")
        if field.strip() in raw:
            fail(f"--selector {field.strip()} given twice")
        raw[field.strip()] = css
    try:
        return html_list.selectors_from_options(raw)
    except html_list.SelectorError as e:
        fail(str(e), 2)


@sources_app.command("add")
def sources_add(
    name: str,
    kind: Annotated[str, typer.Argument(help=f"One of: {', '.join(source_kinds.KINDS)}")],
    url: str,
    every: Annotated[str, typer.Option(help="How often to scrape, e.g. 30m, 2h.")] = "30m",
    backfill: Annotated[
        bool, typer.Option("--backfill", help="Alert on the first scrape's papers too.")
    ] = False,
    selector: SelectorOption = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check/--no-check", help="Fetch the URL once and parse it as KIND before adding."
        ),
    ] = True,
    display_name: Annotated[
        str,
        typer.Option(
            "--display-name",
            help="What subscribers read in their digests (default: from KIND and URL, "
            "e.g. 'arXiv cs.LG').",
        ),
    ] = "",
) -> None:
    """Add a source to watch (an html source needs --selector item=, title=, link=).

    The URL is fetched once and parsed as KIND first (--no-check skips that, e.g. for a
    source that is down right now)."""
    if kind not in source_kinds.KINDS:
        fail(f"unknown source kind {kind!r}: use one of {', '.join(source_kinds.KINDS)}")
    if not url.startswith(("http://", "https://")):
        fail(f"source URL must be http(s): {url!r}")
    try:
        seconds = parse_interval(every)
    except ValueError as e:
        fail(str(e))
    options = None
    if kind == html_list.KIND:
        options = selectors_from_flags(selector or []).to_options()
    elif selector:
        fail(f"--selector is for html sources, not {kind}")
    settings = get_settings()
    factory = open_db(settings)
    with factory() as s:
        if repo.source_by_name(s, name) is not None:
            fail(f"a source named {name!r} exists already")
    if check:
        found = _check_source(settings, kind, url, options)
        out.print(f"checked {url}: {plural(found, 'entry', 'entries')} "
                  f"{'parses' if found == 1 else 'parse'} as {kind}", markup=False)
    with checked(), transaction(factory) as s:
        source_changes.save_source(s, None, "cli", name=name, kind=kind, url=url,
                                   every_seconds=seconds, backfill=backfill, options=options,
                                   display_name=display_name)
    out.print(f"added source {name} ({kind}, every {format_interval(seconds)})")


@sources_app.command("set")
def sources_set(
    name: str,
    url: Annotated[str | None, typer.Option(help="A new URL (of the same kind).")] = None,
    every: Annotated[str | None, typer.Option(help="How often to scrape, e.g. 30m, 2h.")] = None,
    new_name: Annotated[str | None, typer.Option("--name", help="Rename it.")] = None,
    display_name: Annotated[
        str | None, typer.Option("--display-name", help="The name digests show for it.")
    ] = None,
    selector: SelectorOption = None,
    backfill: Annotated[
        bool | None,
        typer.Option("--backfill/--no-backfill", help="Alert on its baseline scrape's papers?"),
    ] = None,
    check: Annotated[
        bool,
        typer.Option("--check/--no-check", help="When the URL or selectors change, fetch the "
                     "page once and parse it first."),
    ] = True,
) -> None:
    """Change a source's URL, interval, name, display name, selectors (html: the --selector
    flags replace them all) or backfill; only what is given. Its history stays."""
    factory = open_db()
    with factory() as s:
        src = repo.source_by_name(s, name)
        if src is None:
            fail(f"no source named {name!r}")
        kind, old_url, old_options = src.kind, src.url, src.options
        seconds, enabled, old_backfill = src.every_seconds, src.enabled, src.backfill
    if url is not None and not url.startswith(("http://", "https://")):
        fail(f"source URL must be http(s): {url!r}")
    if every is not None:
        try:
            seconds = parse_interval(every)
        except ValueError as e:
            fail(str(e))
    options = old_options
    if selector and kind != html_list.KIND:
        fail(f"--selector is for html sources, not {kind}")
    if selector:
        options = selectors_from_flags(selector).to_options()
    new_url = url or old_url
    if check and (new_url, options) != (old_url, old_options):
        found = _check_source(get_settings(), kind, new_url, options)
        out.print(f"checked {new_url}: {plural(found, 'entry', 'entries')} "
                  f"{'parses' if found == 1 else 'parse'} as {kind}", markup=False)
    with checked(), transaction(factory) as s:
        src = repo.source_by_name(s, name)
        if src is None:
            fail(f"no source named {name!r}")
        before = source_changes.source_state(src)
        source_changes.save_source(
            s, src, "cli", name=(new_name or name).strip(), kind=kind, url=new_url,
            every_seconds=seconds, enabled=enabled,
            backfill=old_backfill if backfill is None else backfill, options=options,
            display_name=display_name,
        )
        changed = before != source_changes.source_state(src)
        line = f"{src.name} ({kind}, every {format_interval(src.every_seconds)}) {src.url}"
    out.print(f"{'updated' if changed else 'unchanged'} source {line}", markup=False)


def _check_source(
    settings: Settings, kind: str, url: str, options: Mapping[str, object] | None
) -> int:
    """Fetch `url` once and parse it as `kind` (`pipeline.source_check`, as the admin does); the
    number of entries, or one clear error line that says what to do."""
    from paperalerts.edges.fetch import Fetcher

    try:
        with Fetcher.from_settings(settings) as fetcher:
            found = check_source_page(fetcher, kind, url, options,
                                      allow_private=settings.allow_private_urls)
    except SourceCheckFailed as e:
        fail(f"cannot add {url}: {str(e).removeprefix(f'cannot fetch {url}: ')}; --no-check adds "
             "it without fetching" if e.fetch else str(e))
    return len(found.papers)


@sources_app.command("remove")
def sources_remove(
    name: str,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove a source and its memory (snapshots, which papers it listed).

    Papers and subscribers' matches stay. To stop scraping but keep its memory, use
    `sources disable`."""
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


@sources_app.command("preview")
def sources_preview(
    url: str,
    selector: SelectorOption = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="Read this saved page instead of fetching url.")
    ] = None,
) -> None:
    """Show what html selectors extract from a page, saving nothing: one line per paper,
    tab-separated (id, title, url, authors), then one "skipped:" line per item left out."""
    chosen = selectors_from_flags(selector or [])
    try:
        if file is not None:
            body = file.read_bytes()
        else:
            from paperalerts.edges.fetch import Fetcher

            with Fetcher.from_settings(get_settings()) as fetcher:
                body = fetcher.fetch(url).body
        found = html_list.extract(body, url, chosen)
    except OSError as e:
        fail(f"cannot read {file}: {e.strerror or e}")
    except (FetchError, ParseError) as e:
        fail(str(e))
    typer.echo(f"items\t{found.items}\tpapers\t{len(found.papers)}")
    for p in found.papers:
        typer.echo("\t".join((p.id, p.title, p.url, ", ".join(p.authors) or "-")))
    for line in found.skipped:
        typer.echo(f"skipped: {line}")
    if not found.papers:
        raise typer.Exit(1)


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
    factory = open_db()
    with transaction(factory) as s:
        src = repo.source_by_name(s, name)
        if src is None:
            fail(f"no source named {name!r}")
        source_changes.set_enabled(s, src, enabled, "cli")
    out.print(f"{'enabled' if enabled else 'disabled'} {name}", markup=False)


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
    from paperalerts.pipeline import scrape_source

    quiet_step_logs()
    settings = get_settings()
    factory = open_db(settings)
    ids = _chosen_sources(factory, names or [])
    body = _saved_page(file, len(ids)) if file is not None else None
    any_rejected = False
    with Fetcher.from_settings(settings) as fetcher:
        for sid in ids:
            o = scrape_source(
                factory,
                sid,
                fetcher=fetcher,
                now=now_utc(),
                body=body,
                failing_after=settings.failing_after,
            )
            any_rejected |= o.rejected
            _print_outcome(o)
    if any_rejected:
        raise typer.Exit(1)


def _chosen_sources(factory: sessionmaker[Session], names: list[str]) -> list[int]:
    """Ids of the named sources (each must exist), or of every enabled source."""
    with factory() as s:
        if not names:
            return list(s.scalars(select(m.Source.id).where(m.Source.enabled.is_(True))))
        ids = []
        for n in names:
            src = repo.source_by_name(s, n)
            if src is None:
                fail(f"no source named {n!r}")
            ids.append(src.id)
        return ids


def _saved_page(file: Path, sources: int) -> bytes:
    """The bytes of `scrape --file`, which stands in for exactly one source's fetch."""
    if sources != 1:
        fail("--file needs exactly one source name")
    try:
        return file.read_bytes()
    except OSError as e:
        fail(f"cannot read {file}: {e.strerror}")


def _print_outcome(o: ScrapeOutcome) -> None:
    """One line per source, then one line per new paper (the public `scrape` output)."""
    if o.rejected:
        out.print(f"{o.source}: {o.status}: {o.reason}", markup=False)
    elif o.status == "unchanged":
        out.print(f"{o.source}: unchanged (not modified)")
    elif o.status == "quiet":
        out.print(f"{o.source}: quiet day ({o.reason})")
    elif o.baseline:
        out.print(
            f"{o.source}: baseline: {plural(o.entry_count, 'entry', 'entries')} stored, "
            f"{plural(o.stored_new, 'paper')} new to the database (no alerts)"
        )
    else:
        out.print(f"{o.source}: {len(o.new)} new, {o.updated} updated "
                  f"({plural(o.entry_count, 'entry', 'entries')})")
        for pid, title in o.new:
            out.print(f"  + {pid}  {title}", markup=False)


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the main app."""
    app.command("scrape")(scrape)
    app.add_typer(sources_app, name="sources")

"""`paperalerts digests resend`: failed digests and alerts resent, by id or in bulk."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Annotated

import typer

from paperalerts.edges.config import get_settings
from paperalerts.faces.cli_console import fail
from paperalerts.faces.cli_db import open_db
from paperalerts.pipeline.resend import failed_deliveries, resend_deliveries


def digests_resend(
    ids: Annotated[
        list[int] | None, typer.Argument(help="Delivery ids to resend (else see --failed).")
    ] = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="Every failed digest and alert that holds papers.")
    ] = False,
    since: Annotated[
        str | None, typer.Option("--since", help="With --failed: created on or after YYYY-MM-DD.")
    ] = None,
    kind: Annotated[
        str | None, typer.Option("--kind", help="With --failed: only digest or only alert.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be resent; change nothing.")
    ] = False,
) -> None:
    """Give failed digests and alerts a new delivery with the same papers; the next scheduler
    run sends them. Prints one line per delivery (old id, new id or -, what happened) and a
    total; exits 1 when an id given could not be resent."""
    if not ids and not failed:
        fail("give delivery ids, or --failed for every failed digest and alert")
    if ids and (failed or since or kind):
        fail("give delivery ids or --failed (with --since/--kind), not both")
    if kind not in (None, "digest", "alert"):
        fail(f"--kind: {kind!r} is not digest or alert")
    start = None
    if since is not None:
        try:
            start = datetime.combine(datetime.strptime(since, "%Y-%m-%d").date(), time(), UTC)
        except ValueError:
            fail(f"--since: {since!r} is not a date (YYYY-MM-DD)")
    factory = open_db(get_settings())
    todo = list(ids or []) or failed_deliveries(factory, since=start, kind=kind)
    if dry_run:
        for did in todo:
            typer.echo(f"{did}\twould resend")
        typer.echo(f"{len(todo)} would be resent")
        return
    out = resend_deliveries(factory, todo, now=datetime.now(UTC), actor="cli")
    for r in out:
        typer.echo(f"{r.old}\t{r.new if r.new is not None else '-'}\t{r.reason or 'resent'}")
    done = sum(1 for r in out if r.new is not None)
    typer.echo(f"{done} resent, {len(out) - done} not resent")
    if ids and done < len(out):
        raise typer.Exit(1)


def register(digests_app: typer.Typer) -> None:
    digests_app.command("resend")(digests_resend)

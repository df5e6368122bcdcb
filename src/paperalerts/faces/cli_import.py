"""``paperalerts subscribers import FILE`` and ``subscribers export``: CSV or JSON Lines, streamed
through the one import pipeline (`pipeline.subscriber_import`), registered by cli.py.

Import prints every problem as ``line N (email): what`` on standard output, then one summary
line; it exits 0 when every row was fine, 1 when rows were skipped or the file was refused.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, BinaryIO

import typer

from paperalerts.core.subscriber_file import Format, format_for
from paperalerts.faces.cli_console import fail, out
from paperalerts.faces.cli_db import open_db
from paperalerts.pipeline.subscriber_import import (
    ImportSummary,
    export_lines,
    import_file,
)

FormatOption = Annotated[
    str | None,
    typer.Option("--format", help="csv or jsonl (default: from the file's extension, else csv)."),
]


def _format(name: str, given: str | None) -> Format:
    try:
        return format_for(name, given)
    except ValueError as e:
        fail(str(e))
    raise AssertionError


def subscribers_import(
    file: Annotated[str, typer.Argument(help="A CSV or JSON Lines file; - reads standard input.")],
    fmt: FormatOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check every row and report; write nothing.")
    ] = False,
) -> None:
    """Import subscribers (create new addresses, update known ones by email).

    CSV columns: email (required), name, status, frequency, send_hour, weekday, timezone,
    topics (names separated by ;), rules (one per line in the cell). An empty cell keeps the
    stored value; a topics or rules cell is the whole list. An unsubscribed or bounced address
    stays so: an import never reactivates it. Rows with problems are skipped and listed with
    their line; a file that is not UTF-8 or has an unknown column is refused as a whole."""
    fmt_ = _format(file, fmt)
    if file == "-":
        summary = _run(sys.stdin.buffer, fmt_, dry_run)
    else:
        try:
            stream = open(file, "rb")  # noqa: SIM115 - closed below, after the streamed import
        except OSError as e:
            fail(f"cannot read {file}: {e.strerror or e}")
        with stream:
            summary = _run(stream, fmt_, dry_run)
    for p in summary.problems:
        typer.echo(str(p))
    out.print(summary.describe(), markup=False)
    if summary.problems:
        raise typer.Exit(1)


def _run(stream: BinaryIO, fmt: Format, dry_run: bool) -> ImportSummary:
    return import_file(open_db(), stream, fmt, now=datetime.now(UTC), actor="cli",
                       dry_run=dry_run)


def subscribers_export(
    fmt: FormatOption = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file (default: stdout).")
    ] = None,
) -> None:
    """Export every subscriber (suppressed ones too, with their status) as CSV or JSON Lines,
    in the shape `subscribers import` reads back."""
    fmt_ = _format(output.name if output else "", fmt)
    lines = export_lines(open_db(), fmt_)
    if output is None:
        # newline="" semantics: CSV rows end in CRLF as written, whatever the platform.
        for line in lines:
            sys.stdout.write(line)
        sys.stdout.flush()
        return
    try:
        with output.open("w", encoding="utf-8", newline="") as f:
            f.writelines(lines)
    except OSError as e:
        fail(f"cannot write {output}: {e.strerror or e}")


def register(subscribers_app: typer.Typer) -> None:
    subscribers_app.command("import")(subscribers_import)
    subscribers_app.command("export")(subscribers_export)

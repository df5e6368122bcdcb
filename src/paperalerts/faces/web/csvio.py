"""The admin's CSV import and export: web glue over the one import pipeline
(`pipeline.subscriber_import`, the same code as ``paperalerts subscribers import/export``).

The upload is streamed from its spooled file a line at a time (no row cap); the import runs in
a worker thread so a large file does not stall the server's event loop.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime
from typing import BinaryIO

from sqlalchemy.orm import Session, sessionmaker

from paperalerts.core.subscriber_file import COLUMNS as COLUMNS
from paperalerts.core.subscriber_file import Problem
from paperalerts.pipeline.subscriber_import import ImportSummary, export_lines, import_file

#: The largest upload accepted (~1.5 million rows); a larger file is refused as a whole, never
#: cut. The CLI has no limit.
MAX_UPLOAD_BYTES = 100_000_000


def too_large(size: int) -> ImportSummary:
    """The summary shown for an upload over the limit: refused, nothing written."""
    return ImportSummary(dry_run=True, problems=[Problem(
        0, "", f"the file is larger than {MAX_UPLOAD_BYTES // 1_000_000} MB "
        f"({size // 1_000_000} MB); split it, or use `paperalerts subscribers import`",
        fatal=True)])


def run_import(factory: sessionmaker[Session], upload: BinaryIO | None, text: str,
               now: datetime, actor: str, *, dry_run: bool) -> ImportSummary:
    """Import the uploaded file (or, without one, the pasted text) as CSV."""
    stream: BinaryIO = upload if upload is not None else io.BytesIO(text.encode("utf-8"))
    return import_file(factory, stream, "csv", now=now, actor=actor, dry_run=dry_run)


def export_csv(factory: sessionmaker[Session]) -> Iterator[str]:
    """Every subscriber as CSV text, a row at a time (for a streamed response)."""
    return export_lines(factory, "csv")

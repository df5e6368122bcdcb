"""Importing and exporting subscribers: the one pipeline behind ``paperalerts subscribers
import/export``, the admin's CSV page and the benchmarks.

    with open("people.csv", "rb") as f:
        summary = import_file(factory, f, "csv", now=datetime.now(UTC), actor="cli")

Rows are read, checked and written a chunk at a time (a few statements per chunk, see
`edges.db.subscriber_bulk`), so a file of any length streams through in flat memory. What a row
does to a stored subscriber is `core.subscriber_rows.merge` (update by email, suppression kept,
unchanged rows untouched). Row problems skip their row; a *fatal* problem (the file is not
UTF-8, its header is wrong) rolls the whole import back. The whole import is one transaction, so
a crash half-way leaves nothing half-imported (and importing again is harmless anyway).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any, BinaryIO

from sqlalchemy.orm import Session, sessionmaker

from paperalerts.core.subscriber_file import Format, Problem, Record, read_records, write_lines
from paperalerts.core.subscriber_rows import (
    AddressCheck,
    Change,
    SubscriberRow,
    check_record,
    merge,
)
from paperalerts.edges.db import repo
from paperalerts.edges.db import subscriber_bulk as bulk
from paperalerts.edges.db.engine import transaction

CHUNK_ROWS = 2_000


@dataclass
class ImportSummary:
    """What an import did (or, for a dry run, would do). `problems` lists every problem of
    every row, in file order, each with its line. `refused`: a fatal problem meant nothing was
    written."""

    dry_run: bool = False
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    kept_suppressed: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        return any(p.fatal for p in self.problems)

    @property
    def skipped(self) -> int:
        """Rows not imported because of their problems."""
        return len({p.line for p in self.problems if not p.fatal})

    def describe(self) -> str:
        """The one summary line (the CLI's last line, the admin page's heading)."""
        if self.refused:
            fatal = sum(p.fatal for p in self.problems)
            return (f"refused: nothing was written ({fatal} problem(s) with the file itself; "
                    f"{self.rows} row(s) read)")
        c, u, n, k = self.created, self.updated, self.unchanged, self.kept_suppressed
        did = (f"dry run, nothing written: would create {c}, update {u}, leave {n} unchanged, "
               f"keep {k} suppressed" if self.dry_run else
               f"imported: created {c}, updated {u}, unchanged {n}, kept suppressed {k}")
        return f"{did}; {self.skipped} row(s) skipped with problems ({self.rows} read)"

    def counts(self) -> dict[str, int]:
        return {"rows": self.rows, "created": self.created, "updated": self.updated,
                "unchanged": self.unchanged, "kept_suppressed": self.kept_suppressed,
                "skipped": self.skipped}


class _Refused(Exception):
    """Raised inside the transaction to roll back an import with a fatal problem."""


def import_file(
    factory: sessionmaker[Session], stream: BinaryIO | Iterable[bytes], fmt: Format, *,
    now: datetime, actor: str, dry_run: bool = False, chunk_rows: int = CHUNK_ROWS,
) -> ImportSummary:
    """Import a CSV or JSON Lines file (a binary stream, or any iterable of its lines as bytes).

    `now` stamps created/confirmed/unsubscribed times and computes next digest times; `actor`
    goes into the audit log. `dry_run`: check every row and count what would happen, writing
    nothing. Returns the summary; never raises for bad input (every problem is in it)."""
    return import_records(factory, read_records(stream, fmt), now=now, actor=actor,
                          dry_run=dry_run, chunk_rows=chunk_rows)


def import_records(
    factory: sessionmaker[Session], records: Iterable[Record | Problem], *, now: datetime,
    actor: str, dry_run: bool = False, chunk_rows: int = CHUNK_ROWS,
) -> ImportSummary:
    """Import already-read records (see `core.subscriber_file.read_records`; build `Record`s
    directly to load generated rows, e.g. ``Record(n, {"email": ..., "rules": [...]})``).
    Same contract as `import_file`."""
    summary = ImportSummary(dry_run=dry_run)
    try:
        # A dry run only reads: no write lock (SQLite), nothing to roll back but its reads.
        with factory() if dry_run else transaction(factory) as s:
            topics = bulk.topic_ids_by_name(s)
            rows = _checked_rows(records, topics, summary)
            rules_changed = False
            while chunk := list(islice(rows, chunk_rows)):
                changes = _plan(s, chunk, now, summary)
                rules_changed |= any(c.rules_added or c.rules_removed or c.topics_added
                                     or c.topics_removed for c in changes)
                if not dry_run:
                    for c in bulk.write_changes(s, changes, now):
                        summary.created -= 1
                        summary.problems.append(Problem(
                            c.row.line, c.row.email, "email: a sign-up created this address "
                            "during the import; import the file again to update it"))
                    _audit_updates(s, changes, actor)
            if summary.refused or dry_run:
                raise _Refused
            if rules_changed:
                repo.bump_rules_version(s)
            repo.audit(s, "import", "subscribers", "file", None, summary.counts(), actor)
    except _Refused:
        pass
    if summary.refused and not dry_run:
        summary.created = summary.updated = summary.unchanged = summary.kept_suppressed = 0
    return summary


def _checked_rows(records: Iterable[Record | Problem], topics: Mapping[str, int],
                  summary: ImportSummary) -> Iterator[SubscriberRow]:
    """The valid rows, in order; problems (and repeated addresses) go to the summary."""
    first_line: dict[str, int] = {}
    address = AddressCheck()
    for item in records:
        if isinstance(item, Problem):
            summary.problems.append(item)
            continue
        summary.rows += 1
        checked = check_record(item, topics, address)
        if isinstance(checked, list):
            summary.problems.extend(checked)
            continue
        earlier = first_line.setdefault(checked.email, checked.line)
        if earlier != checked.line:
            summary.problems.append(Problem(checked.line, checked.email,
                                            f"email: the address is on line {earlier} already"))
            continue
        yield checked


def _plan(s: Session, chunk: list[SubscriberRow], now: datetime,
          summary: ImportSummary) -> list[Change]:
    stored = bulk.load_stored(s, [r.email for r in chunk])
    changes = [merge(r, stored.get(r.email), now) for r in chunk]
    for c in changes:
        summary.kept_suppressed += c.kept_suppressed
        if c.stored is None:
            summary.created += 1
        elif c.changed:
            summary.updated += 1
        else:
            summary.unchanged += 1
    return [c for c in changes if c.changed]


def _audit_updates(s: Session, changes: Iterable[Change], actor: str) -> None:
    """An audit row for each known subscriber the import changed (creations are counted in the
    import's own audit row: one per person would double the cost of a large first import)."""
    for c in changes:
        if c.stored is not None and c.values:
            before = {k: getattr(c.stored, k) for k in c.values if hasattr(c.stored, k)}
            after = {k: v for k, v in c.values.items() if k in before}
            repo.audit(s, "import", "subscriber", c.stored.id, before, after, actor)


# --- export ----------------------------------------------------------------------------------


def export_lines(factory: sessionmaker[Session], fmt: Format) -> Iterator[str]:
    """Every subscriber (suppressed ones included, with their status) as CSV or JSON Lines
    text, a row at a time; what `import_file` reads back to the same state."""
    with factory() as s:
        yield from write_lines(bulk.stream_subscribers(s), fmt)


def export_rows(factory: sessionmaker[Session]) -> Iterator[dict[str, Any]]:
    """Every subscriber as a dict of the file's columns (topics and rules as lists)."""
    with factory() as s:
        yield from bulk.stream_subscribers(s)

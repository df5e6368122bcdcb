"""Subscribers as CSV: export, and import with a row-by-row report (dry run or for real).

Columns: email, name, status, frequency, send_hour, weekday, timezone, topics (names separated
by ``;``), rules (one rule per line inside the cell). Only email is required. A cell starting
with ``= + - @`` or a tab gets a leading apostrophe on export, so a spreadsheet does not run it
as a formula; import removes that apostrophe again.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from paperalerts.edges.db import models as m
from paperalerts.errors import InvalidInput
from paperalerts.pipeline import subscriptions as subs

COLUMNS = ("email", "name", "status", "frequency", "send_hour", "weekday", "timezone",
           "topics", "rules")
IMPORT_STATUSES = ("pending", "active", "paused")
MAX_ROWS = 20_000
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    text = str(value)
    return "'" + text if text.startswith(_FORMULA) else text


def _uncell(text: str) -> str:
    return text[1:] if text.startswith("'") and text[1:].startswith(_FORMULA) else text


def export_rows(s: Session) -> Iterator[list[str]]:
    topics = dict(s.execute(select(m.Topic.id, m.Topic.name)).all())
    follows: dict[int, list[str]] = {}
    for sid, tid in s.execute(select(m.SubscriberTopic.subscriber_id, m.SubscriberTopic.topic_id)):
        follows.setdefault(sid, []).append(topics[tid])
    rules: dict[int, list[str]] = {}
    for sid, query in s.execute(select(m.Rule.subscriber_id, m.Rule.query).order_by(m.Rule.id)):
        rules.setdefault(sid, []).append(query)
    yield list(COLUMNS)
    for sub in s.scalars(select(m.Subscriber).order_by(m.Subscriber.email)):
        yield [_cell(v) for v in (
            sub.email, sub.name, sub.status, sub.frequency, sub.send_hour, sub.weekday,
            sub.timezone, ";".join(sorted(follows.get(sub.id, []))),
            "\n".join(rules.get(sub.id, [])),
        )]


def export_csv(s: Session) -> str:
    out = io.StringIO()
    csv.writer(out).writerows(export_rows(s))
    return out.getvalue()


@dataclass(frozen=True)
class ImportRow:
    line: int
    email: str
    name: str
    status: str
    prefs: subs.Prefs
    topics: frozenset[int]
    rules: tuple[str, ...]


@dataclass
class ImportReport:
    """`valid` rows to create; `invalid` (line, email, problem); `existing` addresses skipped."""

    valid: list[ImportRow] = field(default_factory=list)
    invalid: list[tuple[int, str, str]] = field(default_factory=list)
    existing: list[tuple[int, str]] = field(default_factory=list)
    created: int = 0


MAX_UPLOAD_BYTES = 10_000_000


class UploadError(ValueError):
    """An uploaded CSV that cannot be read at all; the message says why and where."""


def decode_upload(data: bytes) -> str:
    """The text of an uploaded CSV file: UTF-8 (a BOM is dropped). A file over
    MAX_UPLOAD_BYTES or in another encoding is an UploadError, never truncated or patched with
    replacement characters (which would import wrong addresses)."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadError(f"the file is larger than {MAX_UPLOAD_BYTES // 1_000_000} MB; "
                          "split it")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise UploadError(f"the file is not UTF-8: byte 0x{data[e.start]:02x} on line {line} "
                          "cannot be read; save it as \"CSV UTF-8\"") from None


def check_csv(s: Session, text: str) -> ImportReport:
    """Validate every row (address, status, schedule, topics by name, each rule) without
    writing anything. Addresses already stored, or repeated in the file, are reported."""
    report = ImportReport()
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    if "email" not in header:
        report.invalid.append((1, "", f"the header must name an 'email' column; got {header}"))
        return report
    unknown = sorted(set(header) - set(COLUMNS))
    if unknown:
        report.invalid.append((1, "", f"unknown columns {unknown}; known: {', '.join(COLUMNS)}"))
        return report
    reader.fieldnames = header
    topics = {name.casefold(): tid for tid, name in s.execute(select(m.Topic.id, m.Topic.name))}
    seen: set[str] = set()
    for n, raw in enumerate(reader, 2):
        if n > MAX_ROWS + 1:
            report.invalid.append((n, "", f"more than {MAX_ROWS} rows; split the file"))
            break
        row = {k: _uncell((v or "").strip()) for k, v in raw.items() if k is not None}
        email = row.get("email", "")
        try:
            report_row = _check_row(n, row, topics)
        except InvalidInput as e:
            report.invalid.append((n, email, f"{e.field}: {e.message}"))
            continue
        if report_row.email in seen:
            report.invalid.append((n, email, "this address appears earlier in the file"))
        elif subs.by_email(s, report_row.email) is not None:
            report.existing.append((n, report_row.email))
        else:
            report.valid.append(report_row)
        seen.add(report_row.email)
    return report


def _check_row(n: int, row: dict[str, str], topics: dict[str, int]) -> ImportRow:
    email = subs.parse_email(row.get("email", ""))
    status = row.get("status") or "active"
    if status not in IMPORT_STATUSES:
        raise InvalidInput("status", f"must be one of {', '.join(IMPORT_STATUSES)}")
    prefs = subs.parse_prefs(row.get("frequency") or "daily", row.get("send_hour") or "8",
                             row.get("weekday") or "0", row.get("timezone") or "UTC")
    chosen = set()
    for name in filter(None, (t.strip() for t in row.get("topics", "").split(";"))):
        if name.casefold() not in topics:
            raise InvalidInput("topics", f"no topic named {name!r}")
        chosen.add(topics[name.casefold()])
    rules = tuple(q for q, _ in subs.parse_rule_lines(row.get("rules", "")))
    return ImportRow(n, email, row.get("name", ""), status, prefs, frozenset(chosen), rules)


def apply_import(s: Session, report: ImportReport, now: datetime, actor: str) -> int:
    """Create the valid rows' subscribers (in the caller's transaction); returns how many."""
    for r in report.valid:
        subs.create_subscriber(s, r.email, r.prefs, now, actor, status=r.status, name=r.name,
                               rules=r.rules, topics=r.topics, public_only=False)
    report.created = len(report.valid)
    return report.created

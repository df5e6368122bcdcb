"""Subscriber files, pure: bytes in, numbered records out (and records back to text), for CSV
and JSON Lines, streamed line by line so a file of any size is read in constant memory.

CSV columns (the admin's): email, name, status, frequency, send_hour, weekday, timezone, topics
(names separated by ``;``), rules (one rule per line inside the cell). Only email is required.
A cell starting with ``= + - @``, a tab or a CR gets a leading apostrophe on export, so a
spreadsheet does not run it as a formula; import removes that apostrophe again.

JSON Lines: one object a line with the same keys; ``send_hour`` and ``weekday`` are numbers,
``topics`` and ``rules`` lists of strings.

Problems are values: a `Problem` carries the line it was found on. A *fatal* one is about the
file itself (not UTF-8, a UTF-16 byte-order mark, a header without ``email`` or with unknown
columns): an import refuses the whole file. The others belong to one row.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

Format = Literal["csv", "jsonl"]
FORMATS: Final = ("csv", "jsonl")
COLUMNS: Final = ("email", "name", "status", "frequency", "send_hour", "weekday", "timezone",
                  "topics", "rules")
_FORMULA: Final = ("=", "+", "-", "@", "\t", "\r")
_EXTENSIONS: Final[dict[str, Format]] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl",
                                         ".json": "jsonl"}
_UTF16_BOMS: Final = (b"\xff\xfe", b"\xfe\xff")
_UTF8_BOM: Final = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Problem:
    """Something wrong at `line` (1-based; 1 is a CSV file's header). `fatal`: the file itself
    is wrong, so nothing of it may be written."""

    line: int
    email: str
    message: str
    fatal: bool = False

    def __str__(self) -> str:
        who = f" ({self.email})" if self.email else ""
        return f"line {self.line}{who}: {self.message}"


@dataclass(frozen=True)
class Record:
    """One row as read: its first line, its cells by column (str from CSV; str, int or list from
    JSON), and problems found while reading it (e.g. too many cells)."""

    line: int
    fields: Mapping[str, object]
    problems: tuple[Problem, ...] = field(default=())


def format_for(name: str, given: str | None = None) -> Format:
    """The format to use: `given` when set, else from the file name's extension (``.csv``;
    ``.jsonl``, ``.ndjson``, ``.json``), else CSV. ValueError for an unknown `given`."""
    if given:
        if given not in FORMATS:
            raise ValueError(f"unknown format {given!r}; use csv or jsonl")
        return given  # type: ignore[return-value]
    dot = name.rfind(".")
    return _EXTENSIONS.get(name[dot:].lower(), "csv") if dot >= 0 else "csv"


def read_records(lines: Iterable[bytes], fmt: Format) -> Iterator[Record | Problem]:
    """The file's records in order, interleaved with the problems found on the way. `lines` is
    the file's bytes split after each newline (iterating a binary file gives exactly that)."""
    problems: list[Problem] = []
    text = _decode(lines, problems)
    rows = _csv(text, problems) if fmt == "csv" else _jsonl(text)
    for item in rows:
        yield from problems
        problems.clear()
        yield item
    yield from problems


def _decode(lines: Iterable[bytes], problems: list[Problem]) -> Iterator[str]:
    """UTF-8 text line by line (a UTF-8 BOM dropped). A line that is not UTF-8 is a fatal
    problem naming the byte; it is still decoded (with replacement characters) so that the rest
    of the file gets checked too."""
    for n, raw in enumerate(lines, 1):
        if n == 1:
            if raw.startswith(_UTF16_BOMS):
                problems.append(Problem(1, "", "the file is UTF-16; save it as UTF-8 (\"CSV "
                                        "UTF-8\") and import it again", fatal=True))
                return
            raw = raw.removeprefix(_UTF8_BOM)
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as e:
            problems.append(Problem(n, "", f"not UTF-8: byte 0x{raw[e.start]:02x} at column "
                                    f"{e.start + 1} cannot be read; save the file as UTF-8",
                                    fatal=True))
            yield raw.decode("utf-8", errors="replace")


def _uncell(text: str) -> str:
    return text[1:] if text.startswith("'") and text[1:].startswith(_FORMULA) else text


def _csv(text: Iterator[str], problems: list[Problem]) -> Iterator[Record]:
    reader = csv.reader(text, strict=False)
    header: list[str] | None = None
    last = 0
    for cells in reader:
        start, last = last + 1, reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if header is None:
            header = [c.strip().lower() for c in cells]
            problems.extend(_header_problems(header))
            continue
        fields = {k: _uncell(v.strip()) for k, v in zip(header, cells, strict=False)}
        extra: tuple[Problem, ...] = ()
        if len(cells) > len(header):
            extra = (Problem(start, fields.get("email", ""), f"{len(cells)} cells but the header "
                             f"names {len(header)} columns (a stray comma?)"),)
        yield Record(start, fields, extra)
    if header is None:
        problems.append(Problem(1, "", "the file is empty: the first line must name the columns "
                                f"({', '.join(COLUMNS)})", fatal=True))


def _header_problems(header: Sequence[str]) -> Iterator[Problem]:
    if "email" not in header:
        yield Problem(1, "", f"the header must name an 'email' column; got {', '.join(header)}",
                      fatal=True)
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        yield Problem(1, "", f"unknown column(s) {', '.join(map(repr, unknown))}; known: "
                      f"{', '.join(COLUMNS)}", fatal=True)
    twice = sorted({h for h in header if header.count(h) > 1})
    if twice:
        yield Problem(1, "", f"column(s) named twice: {', '.join(twice)}", fatal=True)


def _jsonl(text: Iterator[str]) -> Iterator[Record]:
    for n, line in enumerate(text, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            yield Record(n, {}, (Problem(n, "", f"not JSON: {e.msg} at column {e.colno}"),))
            continue
        if not isinstance(obj, dict):
            yield Record(n, {}, (Problem(n, "", "each line must be a JSON object"),))
            continue
        unknown = [k for k in obj if k not in COLUMNS]
        email = obj.get("email")
        shown = email if isinstance(email, str) else ""
        extra = (Problem(n, shown, f"unknown field(s) {', '.join(map(repr, unknown))}; known: "
                         f"{', '.join(COLUMNS)}"),) if unknown else ()
        yield Record(n, {k: v for k, v in obj.items() if k in COLUMNS}, extra)


# --- writing ---------------------------------------------------------------------------------


class _Line:
    """A file-like that keeps the last thing csv.writer wrote (one row at a time)."""

    value = ""

    def write(self, text: str) -> int:
        self.value = text
        return len(text)


def _cell(value: object) -> str:
    text = str(value)
    return "'" + text if text.startswith(_FORMULA) else text


def write_lines(rows: Iterable[Mapping[str, Any]], fmt: Format) -> Iterator[str]:
    """The file's text, one row at a time (CSV with its header first). Each row maps every
    column to a value; ``topics`` and ``rules`` are lists of strings."""
    if fmt == "jsonl":
        for row in rows:
            yield json.dumps({c: row[c] for c in COLUMNS}, ensure_ascii=False) + "\n"
        return
    buf = _Line()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    yield buf.value
    for row in rows:
        writer.writerow([_cell(";".join(row["topics"]) if c == "topics" else
                               "\n".join(row["rules"]) if c == "rules" else row[c])
                         for c in COLUMNS])
        yield buf.value

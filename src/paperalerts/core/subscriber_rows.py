"""One imported row, pure: a `Record`'s cells -> a checked `SubscriberRow` (or every problem of
the row), and a row merged with the stored subscriber -> what to write (`Change`).

What an import does to a row (the contract the CLI, the admin page and the benchmark share):
- a new address is created with the row's values (empty cells take the defaults: active, daily,
  8 h, Monday, UTC);
- a known address is updated *by email*: a non-empty cell replaces the stored value, an empty
  one keeps it; when the ``topics`` or ``rules`` column is there at all, its cell is the whole
  list (empty = none); an absent column leaves them alone;
- suppression is kept: an unsubscribed or bounced address stays so whatever the row says (an
  import never reactivates it), and a row saying ``unsubscribed``, ``bounced`` or
  ``complained`` (stored as bounced, as the mailbox reader does) suppresses the address;
- a row that changes nothing writes nothing, so importing the same file twice changes nothing
  the second time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Final

from paperalerts.core.schedule import Frequency, next_digest_at
from paperalerts.core.subscriber_file import Problem, Record
from paperalerts.core.subscribers import (
    MAX_RULES,
    Prefs,
    check_rule,
    normalize_email,
    parse_prefs,
)
from paperalerts.errors import InvalidInput

#: Statuses an import accepts; ``complained`` is stored as ``bounced``.
IMPORT_STATUSES: Final = ("pending", "active", "paused", "unsubscribed", "bounced", "complained")
SUPPRESSED: Final = frozenset({"unsubscribed", "bounced"})
DEFAULTS: Final = Prefs("daily", 8, 0, "UTC")
MAX_NAME: Final = 200
# A plain local part (letters, digits, ``_ + -``, single dots between): what nearly every real
# address has, and what the address check (email_validator, then the header round trip of
# `mail_address`) accepts unchanged but for case at any domain it accepted once.
_PLAIN_LOCAL: Final = re.compile(r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*")


class AddressCheck:
    """`normalize_email`, remembering the domains it accepted. An address with a plain ASCII
    local part at a domain already accepted skips the library's domain checks and the header
    round trip (~150 of its ~200 us): what makes importing 100k addresses at a few thousand
    domains fast. It gives exactly `normalize_email`'s answer (a property test holds the two
    equal); anything else (quotes, ``=?``, a new domain) goes through `normalize_email`."""

    def __init__(self, max_domains: int = 100_000) -> None:
        self._domains: dict[str, str] = {}
        self._max = max_domains

    def __call__(self, raw: str) -> str:
        text = raw.strip()
        local, at, domain = text.rpartition("@")
        known = self._domains.get(domain) if at else None
        if (known is not None and len(local) <= 64 and len(text) <= 254
                and _PLAIN_LOCAL.fullmatch(local)):
            return f"{local.lower()}@{known}"
        email = normalize_email(raw)
        if at and len(self._domains) < self._max:
            self._domains[domain] = email.rpartition("@")[2]
        return email


@lru_cache(maxsize=65_536)
def _rule(query: str) -> str:
    """The one rule check, remembered: imported subscribers share many of their rules."""
    return check_rule(query, "rules")


@dataclass(frozen=True)
class SubscriberRow:
    """A checked row. None = the cell was empty or the column absent (keep / default);
    `topics` are topic ids, `rules` (query, normalised form) pairs in file order (a repeated
    query dropped)."""

    line: int
    email: str
    name: str | None
    status: str | None
    frequency: str | None
    send_hour: int | None
    weekday: int | None
    timezone: str | None
    topics: frozenset[int] | None
    rules: tuple[tuple[str, str], ...] | None


def _text(value: object) -> str:
    if value is None:
        return ""
    return str(value).strip()


def _list(value: object, sep: str) -> list[str]:
    """A list cell: a JSON list of strings, or text split on `sep`."""
    if isinstance(value, list):
        items = [_text(v) for v in value]
    else:
        items = [p.strip() for p in _text(value).split(sep)]
    return [i for i in items if i]


def check_record(
    rec: Record, topics: Mapping[str, int], address: Callable[[str], str] = normalize_email,
) -> SubscriberRow | list[Problem]:
    """The row, or every problem it has (each with the row's line). `topics` maps casefolded
    topic names to ids; `address` is the address check (an `AddressCheck` for many rows)."""
    f = rec.fields
    email_raw = _text(f.get("email"))
    problems = list(rec.problems)

    def bad(message: str) -> None:
        problems.append(Problem(rec.line, email_raw, message))

    email = ""
    try:
        email = address(email_raw) if email_raw else ""
        if not email:
            bad("email: the address is missing")
    except InvalidInput as e:
        bad(f"email: {e.message}")
    status = _text(f.get("status")).lower() or None
    if status is not None and status not in IMPORT_STATUSES:
        bad(f"status: unknown status {status!r}; use one of {', '.join(IMPORT_STATUSES)}")
    if status == "complained":
        status = "bounced"
    name = _text(f.get("name")) or None
    if name is not None and len(name) > MAX_NAME:
        bad(f"name: longer than {MAX_NAME} characters")
    sched = _schedule(f, bad)
    chosen: frozenset[int] | None = None
    if "topics" in f:
        ids = set()
        for t in _list(f["topics"], ";"):
            if t.casefold() in topics:
                ids.add(topics[t.casefold()])
            else:
                bad(f"topics: no topic named {t!r}")
        chosen = frozenset(ids)
    rules = _rules(f["rules"], bad) if "rules" in f else None
    if problems:
        return problems
    return SubscriberRow(rec.line, email, name, status, *sched, chosen, rules)


_Schedule = tuple[str | None, int | None, int | None, str | None]


def _schedule(f: Mapping[str, object], bad: Callable[[str], None]) -> _Schedule:
    """The given schedule cells, each checked by the same `parse_prefs` as every face (the
    defaults stand in for the others, so each bad cell is named on its own)."""
    given = {k: _text(f.get(k)) for k in ("frequency", "send_hour", "weekday", "timezone")}
    d = DEFAULTS
    try:  # the usual case, one call; on a problem, each cell again on its own to name them all
        p = _prefs(given["frequency"] or d.frequency, given["send_hour"] or d.send_hour,
                   given["weekday"] or d.weekday, given["timezone"] or d.timezone)
        return (p.frequency if given["frequency"] else None,
                p.send_hour if given["send_hour"] else None,
                p.weekday if given["weekday"] else None,
                p.timezone if given["timezone"] else None)
    except InvalidInput:
        pass
    out: list[object] = []
    for key, args in (
        ("frequency", (given["frequency"] or d.frequency, d.send_hour, d.weekday, d.timezone)),
        ("send_hour", (d.frequency, given["send_hour"] or d.send_hour, d.weekday, d.timezone)),
        ("weekday", (d.frequency, d.send_hour, given["weekday"] or d.weekday, d.timezone)),
        ("timezone", (d.frequency, d.send_hour, d.weekday, given["timezone"] or d.timezone)),
    ):
        if not given[key]:
            out.append(None)
            continue
        try:
            p = parse_prefs(*args)
        except InvalidInput as e:
            bad(f"{key}: {e.message}")
            out.append(None)
            continue
        out.append({"frequency": p.frequency, "send_hour": p.send_hour, "weekday": p.weekday,
                    "timezone": p.timezone}[key])
    return (out[0], out[1], out[2], out[3])  # type: ignore[return-value]


@lru_cache(maxsize=16_384)
def _prefs(frequency: str, hour: str | int, weekday: str | int, timezone: str) -> Prefs:
    """`parse_prefs`, remembered: a file repeats a few hundred schedules over all its rows."""
    return parse_prefs(frequency, hour, weekday, timezone)


def _rules(value: object, bad: Callable[[str], None]) -> tuple[tuple[str, str], ...]:
    """Every rule checked with the one rule check (`check_rule`); each bad one named by its
    line inside the cell (or its index in a JSON list)."""
    queries = _list(value, "\n")
    kept: dict[str, str] = {}
    for n, q in enumerate(queries, 1):
        try:
            kept.setdefault(q, _rule(q))
        except InvalidInput as e:
            bad(f"rules: rule {n} ({q!r}): {e.message}")
    if len(kept) > MAX_RULES:
        bad(f"rules: at most {MAX_RULES} rules, got {len(kept)}")
    return tuple(kept.items())


# --- merging with what is stored -------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    """A stored subscriber as the import sees it (`rules`: query -> rule id)."""

    id: int
    status: str
    name: str
    frequency: str
    send_hour: int
    weekday: int
    timezone: str
    rules: Mapping[str, int]
    topics: frozenset[int]


@dataclass(frozen=True)
class Change:
    """What one row does. `values` are the subscriber's columns to write (all of them for a new
    one, the changed ones for a known one; empty = leave the row alone); `rules_added`,
    `rules_removed` (rule ids), `topics_added`, `topics_removed`. `kept_suppressed`: the row
    asked for a live status that suppression refused."""

    row: SubscriberRow
    stored: Stored | None
    values: Mapping[str, object]
    rules_added: tuple[tuple[str, str], ...] = ()
    rules_removed: tuple[int, ...] = ()
    topics_added: frozenset[int] = frozenset()
    topics_removed: frozenset[int] = frozenset()
    kept_suppressed: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.values or self.rules_added or self.rules_removed or self.topics_added
                    or self.topics_removed)


def _status(row: SubscriberRow, stored: Stored | None) -> tuple[str, bool]:
    """(the status to store, whether suppression refused the row's)."""
    if stored is None:
        return row.status or "active", False
    if stored.status in SUPPRESSED:
        return stored.status, row.status is not None and row.status not in SUPPRESSED
    return row.status or stored.status, False


def merge(row: SubscriberRow, stored: Stored | None, now: datetime) -> Change:
    """What to write for `row` given the stored subscriber (None = a new address)."""
    status, refused = _status(row, stored)
    base = stored or DEFAULTS
    freq = row.frequency or base.frequency
    hour = base.send_hour if row.send_hour is None else row.send_hour
    day = base.weekday if row.weekday is None else row.weekday
    tz = row.timezone or base.timezone
    wanted: dict[str, object] = {
        "status": status, "frequency": freq, "send_hour": hour, "weekday": day, "timezone": tz}
    if stored is None:
        values = wanted | {
            "email": row.email, "name": row.name or "", "created_at": now,
            "confirmed_at": now if status == "active" else None,
            "unsubscribed_at": now if status == "unsubscribed" else None,
            "next_digest_at": _next(freq, hour, day, tz, now)}
        return Change(row, None, values, rules_added=row.rules or (),
                      topics_added=row.topics or frozenset())
    if row.name is not None:
        wanted["name"] = row.name
    values = {k: v for k, v in wanted.items() if getattr(stored, k) != v}
    if values.keys() & {"frequency", "send_hour", "weekday", "timezone"} or (
            values.get("status") == "active"):
        values["next_digest_at"] = _next(freq, hour, day, tz, now)
    if values.get("status") == "active" and stored.status == "pending":
        values["confirmed_at"] = now
    if values.get("status") == "unsubscribed":
        values["unsubscribed_at"] = now
    added: tuple[tuple[str, str], ...] = ()
    removed: tuple[int, ...] = ()
    if row.rules is not None:
        wanted_rules = dict(row.rules)
        added = tuple(r for r in row.rules if r[0] not in stored.rules)
        removed = tuple(rid for q, rid in stored.rules.items() if q not in wanted_rules)
    t_add = t_rm = frozenset[int]()
    if row.topics is not None:
        t_add, t_rm = row.topics - stored.topics, stored.topics - row.topics
    return Change(row, stored, values, added, removed, t_add, t_rm, refused)


@lru_cache(maxsize=16_384)
def _next(freq: str, hour: int, day: int, tz: str, now: datetime) -> datetime:
    """`next_digest_at`, remembered (an import has one `now` and a few hundred schedules)."""
    f: Frequency = freq  # type: ignore[assignment]
    return next_digest_at(f, hour, day, tz, now)

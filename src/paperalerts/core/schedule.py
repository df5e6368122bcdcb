"""When a subscriber's next digest is due, and which period a delivery belongs to. Pure.

Send times are wall-clock times in the subscriber's IANA timezone, converted with zoneinfo:

- a send hour that does not exist (spring forward, e.g. 02:00 in Berlin on the last Sunday of
  March) is sent at the first instant after the gap (03:00 local time, the same UTC instant as
  02:00 on the pre-transition offset);
- a send hour that happens twice (autumn, e.g. 02:00 in Berlin on the last Sunday of October) is
  sent once, at its first occurrence (``fold=0``).

Every datetime taken or returned is timezone-aware; returned ones are in UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Final, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Frequency = Literal["instant", "daily", "weekly"]
FREQUENCIES: Final[frozenset[str]] = frozenset(get_args(Frequency))


def zone(tz: str) -> ZoneInfo:
    """The ZoneInfo for an IANA name; ValueError naming the bad value otherwise."""
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError) as e:
        # OSError: a name that is a folder of the tz database ("America") or unreadable.
        msg = f"unknown timezone {tz!r} (expected an IANA name like 'Europe/Berlin')"
        raise ValueError(msg) from e


def _check(frequency: str, after: datetime) -> None:
    if frequency not in FREQUENCIES:
        raise ValueError(f"unknown frequency {frequency!r}; expected one of {sorted(FREQUENCIES)}")
    if after.tzinfo is None or after.utcoffset() is None:
        raise ValueError(f"datetime {after.isoformat()} must be timezone-aware")


def _send_instant(day: date, hour: int, tz: ZoneInfo) -> datetime:
    """The UTC instant of `hour`:00 local time on `day` (gap -> after the gap, repeat -> first)."""
    return datetime.combine(day, time(hour), tzinfo=tz).astimezone(UTC)


def next_digest_at(
    frequency: Frequency, hour: int, weekday: int, tz: str, after: datetime
) -> datetime:
    """The first send time strictly after `after`, in UTC.

    ``instant``: `after` itself (alerts go out as soon as matches exist). ``daily``: the next
    `hour`:00 in `tz`. ``weekly``: the next `hour`:00 in `tz` on `weekday` (0 = Monday; ignored
    otherwise). Raises ValueError for an unknown frequency or timezone, an hour outside 0-23, a
    weekday outside 0-6 or a naive `after`."""
    _check(frequency, after)
    if not 0 <= hour <= 23:
        raise ValueError(f"send hour must be 0-23, got {hour}")
    if not 0 <= weekday <= 6:
        raise ValueError(f"weekday must be 0 (Monday) to 6 (Sunday), got {weekday}")
    zi = zone(tz)
    after_utc = after.astimezone(UTC)
    if frequency == "instant":
        return after_utc
    day = after_utc.astimezone(zi).date()
    # The local date of `after` or the days after it; one extra day covers an hour that a
    # DST change moved before `after` on the same date. A week plus one covers weekly.
    for offset in range(9):
        candidate_day = day + timedelta(days=offset)
        if frequency == "weekly" and candidate_day.weekday() != weekday:
            continue
        candidate = _send_instant(candidate_day, hour, zi)
        if candidate > after_utc:
            return candidate
    raise AssertionError("unreachable: a send time always falls within nine days")


def period_key(
    frequency: Frequency, tz: str, at: datetime, batch_id: str | int | None = None
) -> str:
    """The delivery's period: the local date (``2026-11-28``) for daily, the ISO week
    (``2026-W48``) for weekly, both of `at` in `tz`; for instant, the caller's scrape or batch id
    (required, returned as text). One delivery exists per (subscriber, kind, period key)."""
    _check(frequency, at)
    if frequency == "instant":
        if batch_id is None or str(batch_id) == "":
            raise ValueError("an instant alert's period key needs the scrape/batch id")
        return str(batch_id)
    local = at.astimezone(zone(tz)).date()
    if frequency == "daily":
        return local.isoformat()
    iso = local.isocalendar()
    return f"{iso.year}-W{iso.week:02d}"

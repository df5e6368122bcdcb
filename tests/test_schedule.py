"""Send times in the subscriber's timezone, across DST changes, and period keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from paperalerts.core.schedule import next_digest_at, period_key


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("tz", "hour", "after", "expected", "why"),
    [
        ("Europe/Berlin", 8, utc(2026, 11, 28, 6, 0), utc(2026, 11, 28, 7, 0), "CET, same day"),
        ("Europe/Berlin", 8, utc(2026, 11, 28, 7, 0), utc(2026, 11, 29, 7, 0), "strictly after"),
        ("Europe/Berlin", 8, utc(2026, 7, 1, 5, 0), utc(2026, 7, 1, 6, 0), "CEST"),
        # 2026-03-29 02:00-03:00 does not exist in Berlin: sent right after the gap (03:00 CEST).
        ("Europe/Berlin", 2, utc(2026, 3, 28, 12, 0), utc(2026, 3, 29, 1, 0), "spring gap"),
        # 2026-10-25 02:00-03:00 happens twice in Berlin: sent once, at the first (CEST) one.
        ("Europe/Berlin", 2, utc(2026, 10, 24, 12, 0), utc(2026, 10, 25, 0, 0), "autumn first"),
        ("Europe/Berlin", 2, utc(2026, 10, 25, 0, 0), utc(2026, 10, 26, 1, 0), "not repeated"),
        ("Europe/Berlin", 2, utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 0), "between repeats"),
        # New York: 2026-03-08 02:00 does not exist; 2026-11-01 01:00 happens twice.
        ("America/New_York", 2, utc(2026, 3, 7, 12, 0), utc(2026, 3, 8, 7, 0), "NY spring gap"),
        ("America/New_York", 1, utc(2026, 10, 31, 12, 0), utc(2026, 11, 1, 5, 0), "NY first 1am"),
        ("America/New_York", 1, utc(2026, 11, 1, 5, 0), utc(2026, 11, 2, 6, 0), "NY not twice"),
        ("America/New_York", 20, utc(2026, 11, 28, 23, 0), utc(2026, 11, 29, 1, 0), "UTC next day"),
    ],
)
def test_daily_send_time(tz: str, hour: int, after: datetime, expected: datetime, why: str) -> None:
    """Daily digests go out at the local send hour, DST-correct (case: see `why`)."""
    got = next_digest_at("daily", hour, 0, tz, after)
    assert got == expected, why
    assert got.tzinfo is UTC


@pytest.mark.parametrize("tz", ["Europe/Berlin", "America/New_York"])
@pytest.mark.parametrize("hour", [1, 2, 8])
def test_one_send_per_local_day_for_a_year(tz: str, hour: int) -> None:
    """Stepping from send to send through 2026 gives exactly one send on every local date, at
    the send hour except on the spring-forward day (one hour later), whatever DST does."""
    zi = ZoneInfo(tz)
    at = datetime(2026, 1, 1, tzinfo=zi) - timedelta(seconds=1)
    days = []
    while True:
        at = next_digest_at("daily", hour, 0, tz, at)
        local = at.astimezone(zi)
        if local.year > 2026:
            break
        days.append(local.date())
        assert local.hour in (hour, hour + 1)
        if local.hour != hour:  # only where the send hour does not exist
            assert (local - timedelta(hours=1)).replace(tzinfo=None).hour == hour
    assert len(days) == len(set(days)) == 365


def test_weekly_send_time() -> None:
    """Weekly digests go out on the chosen weekday at the send hour, never twice in one week."""
    friday = utc(2026, 11, 27, 12, 0)
    monday_9_berlin = utc(2026, 11, 30, 8, 0)
    assert next_digest_at("weekly", 9, 0, "Europe/Berlin", friday) == monday_9_berlin
    assert next_digest_at("weekly", 9, 0, "Europe/Berlin", monday_9_berlin) == utc(
        2026, 12, 7, 8, 0
    )
    # Sunday 2026-03-29 is Berlin's spring-forward day: 02:00 becomes 03:00 CEST.
    assert next_digest_at("weekly", 2, 6, "Europe/Berlin", utc(2026, 3, 25)) == utc(
        2026, 3, 29, 1, 0
    )


def test_instant_is_due_at_once() -> None:
    """Instant subscribers are due immediately; the hour and weekday do not matter."""
    after = datetime(2026, 11, 28, 9, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    assert next_digest_at("instant", 8, 0, "Europe/Berlin", after) == utc(2026, 11, 28, 8, 30)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("daily", 8, 0, "Europe/Berlin", datetime(2026, 1, 1)), "timezone-aware"),
        (("daily", 8, 0, "Mars/Olympus", utc(2026, 1, 1)), "unknown timezone 'Mars/Olympus'"),
        (("daily", 8, 0, "America", utc(2026, 1, 1)), "unknown timezone 'America'"),
        (("daily", 24, 0, "UTC", utc(2026, 1, 1)), "send hour must be 0-23"),
        (("weekly", 8, 7, "UTC", utc(2026, 1, 1)), "weekday must be 0"),
        (("hourly", 8, 0, "UTC", utc(2026, 1, 1)), "unknown frequency 'hourly'"),
    ],
)
def test_bad_schedule_arguments(args: tuple[object, ...], message: str) -> None:
    """Bad input is refused with a message naming the bad value."""
    with pytest.raises(ValueError, match=message):
        next_digest_at(*args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("frequency", "tz", "at", "key"),
    [
        ("daily", "Europe/Berlin", utc(2026, 11, 28, 7, 0), "2026-11-28"),
        ("daily", "Europe/Berlin", utc(2026, 11, 28, 23, 30), "2026-11-29"),  # past local midnight
        ("daily", "America/New_York", utc(2026, 11, 29, 3, 0), "2026-11-28"),
        ("weekly", "Europe/Berlin", utc(2026, 11, 28, 7, 0), "2026-W48"),
        ("weekly", "UTC", utc(2027, 1, 1, 7, 0), "2026-W53"),  # ISO year, not calendar year
        ("weekly", "UTC", utc(2027, 1, 4, 7, 0), "2027-W01"),
    ],
)
def test_period_key(frequency: str, tz: str, at: datetime, key: str) -> None:
    """Daily keys are the local date, weekly keys the ISO week of the local date."""
    assert period_key(frequency, tz, at) == key  # type: ignore[arg-type]


def test_instant_period_key_is_the_batch_id() -> None:
    """Instant alerts are keyed by the caller's scrape/batch id, which is required."""
    assert period_key("instant", "UTC", utc(2026, 1, 1), batch_id=812) == "812"
    with pytest.raises(ValueError, match="batch id"):
        period_key("instant", "UTC", utc(2026, 1, 1))

"""Backoff after failed admin logins, per (client IP, username), per process.

A pair gets `FREE_FAILURES` free tries, then waits a doubling delay from its last failure
(5 s, 10 s, ... capped at `MAX_LOCK`); a success forgets it. Keyed by the pair, not the account:
someone elsewhere who knows a username cannot lock its admin out.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import timedelta

FREE_FAILURES = 3
BASE_LOCK = timedelta(seconds=5)
MAX_LOCK = timedelta(minutes=15)


def lock_for(failures: int) -> timedelta:
    """How long an (IP, username) pair waits after its `failures`-th consecutive failure."""
    if failures < FREE_FAILURES:
        return timedelta(0)
    return min(BASE_LOCK * (1 << min(failures - FREE_FAILURES, 20)), MAX_LOCK)


class LoginBackoff:
    """Consecutive failed logins per (client IP, username), per process like the other limits.
    At most `max_keys` pairs are remembered (the oldest failure goes first), so a flood of
    made-up names costs bounded memory."""

    def __init__(self, max_keys: int = 10_000) -> None:
        self._failures: OrderedDict[tuple[str, str], tuple[int, float]] = OrderedDict()
        self._max_keys = max_keys
        self._lock = threading.Lock()

    def wait(self, key: tuple[str, str], now: float) -> float:
        """Seconds `key` must still wait before its next attempt (0 = go ahead)."""
        with self._lock:
            failures, last = self._failures.get(key, (0, now))
        return max(0.0, last + lock_for(failures).total_seconds() - now)

    def failed(self, key: tuple[str, str], now: float) -> None:
        with self._lock:
            failures = self._failures.pop(key, (0, now))[0] + 1
            self._failures[key] = (failures, now)
            while len(self._failures) > self._max_keys:
                self._failures.popitem(last=False)

    def succeeded(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._failures.pop(key, None)

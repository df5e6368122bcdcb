"""In-process sliding-window rate limits (sign-ups per IP and per address, logins, previews).

Per process: behind several web workers each keeps its own window, so the effective limit is
the setting times the number of workers. That bounds abuse, which is what these limits are for.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque


class SlidingWindow:
    """At most `limit` events per key in any `window` seconds. Remembers at most `max_keys`
    keys (least recently used are forgotten), so a flood of distinct keys cannot exhaust memory."""

    def __init__(self, limit: int, window: float, *, max_keys: int = 100_000) -> None:
        if limit < 0 or window <= 0:
            raise ValueError(f"limit must be >= 0 and window > 0, got {limit}, {window}")
        self.limit, self.window, self.max_keys = limit, window, max_keys
        self._events: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def hit(self, key: str, now: float) -> float | None:
        """Record an event for `key` at `now` (seconds) if allowed and return None; when the
        limit is reached, record nothing and return the seconds until the next one is allowed."""
        with self._lock:
            events = self._events.pop(key, None) or deque()
            while events and events[0] <= now - self.window:
                events.popleft()
            self._events[key] = events
            while len(self._events) > self.max_keys:
                self._events.popitem(last=False)
            if len(events) >= self.limit:
                return max(events[0] + self.window - now, 0.0) if events else self.window
            events.append(now)
            return None

    def reset(self, key: str) -> None:
        with self._lock:
            self._events.pop(key, None)

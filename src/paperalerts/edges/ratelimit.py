"""Rate limits, of two kinds that answer different questions.

Pacing (`TokenBucket`, `RedisTokenBucket`): "when may the next SMTP message go?". The caller
waits; a token bucket keeps a relay's messages-per-second limit while allowing a small burst, per
process or shared by every process through Redis.

Admission (`SlidingWindow`): "may this key (an IP, an address, a subscriber) do this again now?".
The caller refuses (429 with Retry-After); a sliding window counts exactly "at most N in any
hour", which a bucket refilling continuously does not. Kept in process memory: behind several web
workers each keeps its own window, so the effective limit is the setting times the number of
workers; that bounds abuse, which is what these limits are for.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Final, Protocol


class RateLimiter(Protocol):
    def acquire(self) -> None: ...


class _Bucket:
    """`rate` tokens per second, at most `burst` saved up. Each send reserves a token; the bucket
    may go negative, which is the wait owed (callers queue fairly instead of polling)."""

    def __init__(self, rate: float, burst: float, sleep: Callable[[float], None]) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate must be > 0 and burst >= 1, got {rate}, {burst}")
        self.rate, self.burst, self._sleep = rate, burst, sleep

    def reserve(self) -> float:
        """Take a token; return how long to wait (seconds) before using it."""
        raise NotImplementedError

    def acquire(self) -> None:
        """Wait until the next send is allowed."""
        if (wait := self.reserve()) > 0:
            self._sleep(wait)


class TokenBucket(_Bucket):
    """An in-process bucket; `clock` and `sleep` are injectable for tests."""

    def __init__(
        self,
        rate: float,
        burst: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(rate, burst, sleep)
        self._clock = clock
        self._tokens, self._at = burst, clock()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        with self._lock:
            now = self._clock()
            filled = self._tokens + max(now - self._at, 0.0) * self.rate
            self._tokens, self._at = min(self.burst, filled) - 1, now
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


# The same reservation as TokenBucket.reserve, atomically in Redis on Redis's clock, so every
# process sending through one relay shares one bucket. Returns the wait in seconds, as text
# (Lua numbers would be truncated to integers on the way out).
_RESERVE_LUA: Final = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil or at == nil then tokens, at = burst, now end
tokens = math.min(burst, tokens + math.max(now - at, 0) * rate) - 1
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
if tokens >= 0 then return '0' end
return tostring(-tokens / rate)
"""


class RedisTokenBucket(_Bucket):
    """A bucket shared by every process through Redis (one key per relay)."""

    def __init__(
        self,
        redis_url: str,
        rate: float,
        burst: float = 1.0,
        *,
        key: str = "paperalerts:smtp-rate",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import redis  # only the Redis-shared limiter needs the client

        super().__init__(rate, burst, sleep)
        self.key = key
        self._client = redis.Redis.from_url(redis_url)
        self._script = self._client.register_script(_RESERVE_LUA)

    def reserve(self) -> float:
        return float(self._script(keys=[self.key], args=[self.rate, self.burst]))

    def close(self) -> None:
        self._client.close()


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

"""A clock for tests of waiting code: `sleep` advances it instead of waiting."""

from __future__ import annotations


class FakeClock:
    """Monotonic seconds starting at 100; `sleep` records the wait and moves time on."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

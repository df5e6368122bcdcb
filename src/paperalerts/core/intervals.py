"""Human intervals ("90s", "30m", "2h", "1d", "1h30m") to seconds and back. Pure."""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_interval(text: str) -> int:
    """Seconds in `text`. Raises ValueError saying what is wrong; a bare number is refused
    (is "5" five minutes or five hours?) with the likely meaning suggested."""
    t = text.strip().lower()
    if t.isdigit():
        raise ValueError(f"interval {text!r} has no unit: write e.g. {t}m or {t}h")
    pos, seconds = 0, 0
    for m in _PART.finditer(t):
        if t[pos : m.start()].strip():
            break
        seconds += int(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos == 0 or t[pos:].strip():
        raise ValueError(f"invalid interval {text!r}: use e.g. 90s, 30m, 2h, 1d")
    if seconds < 60:
        raise ValueError(f"interval {text!r} is shorter than one minute (the tick)")
    return seconds


def format_interval(seconds: int) -> str:
    """The shortest exact form: 1800 -> '30m', 5400 -> '1h30m'."""
    out = []
    for unit in ("w", "d", "h", "m", "s"):
        n, seconds = divmod(seconds, _UNITS[unit])
        if n:
            out.append(f"{n}{unit}")
    return "".join(out) or "0s"

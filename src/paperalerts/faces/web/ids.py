"""Row ids in URLs: the ``{name:id}`` path convertor, matching only 1 .. MAX_ID.

Starlette's ``int`` convertor takes any run of digits, so
``/admin/subscribers/99999999999999999999`` reached the database and failed there (OverflowError
on SQLite, an out-of-range error on PostgreSQL): a 500. With ``:id`` a number no row can have
matches no route and is an ordinary 404. The package's ``__init__`` imports this module first, so
the convertor exists before any router module compiles its paths.
"""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor

MAX_ID = 2**31 - 1  # the largest INTEGER primary key PostgreSQL stores (the API's bound too)


def digits_up_to(limit: int) -> str:
    """A regex matching exactly the decimal numbers 1 .. `limit` (no sign, no leading zero)."""
    top = str(limit)
    parts = [f"[1-9][0-9]{{0,{len(top) - 2}}}"] if len(top) > 1 else []
    for i, ch in enumerate(top):
        rest = len(top) - i - 1
        lo = "1" if i == 0 else "0"
        if ch > lo:  # the same prefix, a smaller digit here, anything after
            hi = chr(ord(ch) - 1)
            parts.append(f"{top[:i]}[{lo}-{hi}][0-9]{{{rest}}}")
    parts.append(top)
    return "(?:" + "|".join(parts) + ")"


class IdConvertor(Convertor[int]):
    regex = digits_up_to(MAX_ID)

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        if not 1 <= value <= MAX_ID:
            raise ValueError(f"id {value} is out of range 1..{MAX_ID}")
        return str(value)


register_url_convertor("id", IdConvertor())

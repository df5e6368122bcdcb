"""The README's settings table, made from `Settings.model_fields` (the one list of settings).

    .venv/bin/python scripts/readme_settings.py          # rewrite the table in README.md
    .venv/bin/python scripts/readme_settings.py --check  # exit 1 if README.md is out of date

The table sits between the markers `<!-- settings:start -->` and `<!-- settings:end -->`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from paperalerts.edges.config import Settings

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- settings:start -->", "<!-- settings:end -->"


def default_text(value: object) -> str:
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if value == "" or value is None:
        return "(empty)"
    return f"`{value}`"


def table() -> str:
    """The markdown table: environment name, default, meaning; in the order of `Settings`."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    rows = ["| setting | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        meaning = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{prefix}{name.upper()}` | {default_text(field.default)} | {meaning} |")
    return "\n".join(rows)


def render(readme: str) -> str:
    """`readme` with the text between the markers replaced by the current table."""
    head, sep, rest = readme.partition(START)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise SystemExit(f"{README}: the settings markers are missing")
    return f"{head}{START}\n{table()}\n{END}{tail}"


def main(argv: list[str]) -> int:
    text = README.read_text(encoding="utf-8")
    new = render(text)
    if "--check" in argv:
        if new != text:
            print("README.md's settings table is out of date: run scripts/readme_settings.py")
            return 1
        return 0
    README.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

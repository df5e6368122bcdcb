"""The README keeps its promises: every setting with its default (the generated table is
current), the two commands of a fresh clone, the picture, and commands that exist."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import typer.main

from paperalerts.edges.config import Settings
from paperalerts.faces.cli import app

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")
TABLE = runpy.run_path(str(REPO / "scripts" / "readme_settings.py"))


def section(title: str) -> str:
    """The text of the README section `## title`, up to the next `## `."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.M | re.S)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def test_settings_table_is_generated_from_settings_and_current() -> None:
    """The table between the markers is exactly what scripts/readme_settings.py makes from
    Settings now (run it after adding a setting)."""
    assert TABLE["render"](README) == README, "run: .venv/bin/python scripts/readme_settings.py"


def test_every_setting_is_listed_with_its_default() -> None:
    """Each Settings field has a row: its PAPERALERTS_ name and its default value."""
    rows = {line.split("|")[1].strip(" `"): line for line in section("Settings").splitlines()
            if line.startswith("| `PAPERALERTS_")}  # fmt: skip
    for name, field in Settings.model_fields.items():
        row = rows.get(f"PAPERALERTS_{name.upper()}")
        assert row is not None, f"README lists no PAPERALERTS_{name.upper()}"
        default = field.default
        shown = ("true" if default else "false") if isinstance(default, bool) else str(default)
        assert (f"`{shown}`" if shown else "(empty)") in row, row


def test_tests_section_has_exactly_the_one_command_ci_runs() -> None:
    """CI calls the README's test command: the Tests section's only command is
    `bash scripts/test.sh`, and that script exists."""
    blocks = re.findall(r"```\n(.*?)```", section("Tests"), re.S)
    assert [b.strip() for b in blocks] == ["bash scripts/test.sh"]
    assert (REPO / "scripts" / "test.sh").is_file()


def test_the_two_fresh_clone_commands_are_the_demo_and_the_tests() -> None:
    """The quick start names the demo script and the test script, both present."""
    block = re.findall(r"```\n(.*?)```", section("Try it: two commands"), re.S)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["bash scripts/demo.sh", "bash scripts/test.sh"]
    assert "exec .venv/bin/paperalerts demo" in (REPO / "scripts" / "demo.sh").read_text()


def test_the_picture_is_committed_and_small() -> None:
    """The digest picture the README shows exists, is a PNG, and stays under 300 KB."""
    ref = re.search(r"!\[[^\]]*\]\(([^)]+)\)", README)
    assert ref
    png = REPO / ref.group(1)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size < 300_000


def test_every_paperalerts_command_in_the_readme_exists() -> None:
    """Each `paperalerts CMD [SUB]` in the README's code blocks is a command of the CLI."""
    # Typer's groups quack like click groups (a `commands` mapping) without subclassing them.
    root = typer.main.get_command(app)
    assert hasattr(root, "commands")
    code = "\n".join(re.findall(r"```\n(.*?)```", README, re.S)).replace(" | ", "|")
    seen = set()
    for words in re.findall(r"paperalerts ((?:[a-z]+)(?:[ |][a-z|]+)?)", code):
        top, _, rest = words.partition(" ")
        for name in top.split("|"):
            cmd = root.commands.get(name)
            assert cmd is not None, f"README mentions `paperalerts {name}`"
            seen.add(name)
            if hasattr(cmd, "commands") and rest:
                for sub in rest.split()[0].split("|"):
                    assert sub in cmd.commands, f"README mentions `paperalerts {name} {sub}`"
    assert {"demo", "run", "status", "init", "worker", "beat", "web"} <= seen

"""The init / sources / scrape commands (a public contract), run as the real console script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import fixture_file

CLI = [sys.executable, "-m", "paperalerts"]


def run(db_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    e = {**os.environ, "PAPERALERTS_DATABASE_URL": db_url, **env}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=e, timeout=120)


def test_init_creates_schema_and_default_sources_idempotently(database_url: str) -> None:
    """init creates the schema and the six default sources; a second run changes nothing."""
    r = run(database_url, "init")
    assert r.returncode == 0, r.stderr
    assert "database created at revision" in r.stdout
    r = run(database_url, "init")
    assert "up to date" in r.stdout and "added default sources" not in r.stdout
    lines = run(database_url, "sources", "list").stdout.splitlines()
    assert lines[0].split("\t")[:5] == ["name", "kind", "every", "enabled", "health"]
    names = {ln.split("\t")[0] for ln in lines[1:]}
    assert names == {
        "hf-daily",
        "hf-trending",
        "arxiv-cs.LG",
        "arxiv-cs.CL",
        "arxiv-cs.AI",
        "arxiv-cs.CV",
    }


def test_init_no_defaults_adds_no_source(sqlite_url: str) -> None:
    """--no-defaults creates the schema only."""
    assert run(sqlite_url, "init", "--no-defaults").returncode == 0
    assert run(sqlite_url, "sources", "list").stdout.splitlines()[1:] == []


def test_commands_refuse_an_uninitialised_database(sqlite_url: str) -> None:
    """Without init, a command says so in one line naming the database and exits non-zero (no
    traceback), and creates no database file."""
    r = run(sqlite_url, "sources", "list")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
    path = sqlite_url.removeprefix("sqlite:///")
    assert r.stderr.startswith(f"error: no paperalerts database at {path} (from "
                               "PAPERALERTS_DATABASE_URL)")
    assert "`paperalerts init`" in r.stderr and not Path(path).exists()


def test_sources_add_validates_and_enable_disable(sqlite_url: str) -> None:
    """sources add rejects bad kinds, URLs and intervals with a clear line; enable/disable flip."""
    run(sqlite_url, "init", "--no-defaults")
    r = run(sqlite_url, "sources", "add", "x", "rss", "https://e.org/f")
    assert r.returncode == 1 and "unknown source kind 'rss'" in r.stderr
    r = run(sqlite_url, "sources", "add", "x", "feed", "ftp://e.org/f")
    assert r.returncode == 1 and "http(s)" in r.stderr
    r = run(sqlite_url, "sources", "add", "x", "feed", "https://e.org/f", "--every", "soon")
    assert r.returncode == 1 and "invalid interval 'soon'" in r.stderr
    add = ("sources", "add", "hb", "feed", "https://e.org/f", "--no-check")
    r = run(sqlite_url, *add, "--every", "2h")
    assert r.returncode == 0 and "every 2h" in r.stdout
    assert run(sqlite_url, *add).returncode == 1
    assert run(sqlite_url, "sources", "disable", "hb").returncode == 0
    row = run(sqlite_url, "sources", "list").stdout.splitlines()[1].split("\t")
    assert row[:4] == ["hb", "feed", "2h", "no"]
    assert run(sqlite_url, "sources", "enable", "nope").returncode == 1


def test_scrape_file_prints_counts_and_new_titles(sqlite_url: str) -> None:
    """scrape --file: a baseline first, then 'N new, M updated' and each new title."""
    run(sqlite_url, "init", "--no-defaults")
    run(sqlite_url, "sources", "add", "hb", "feed", "https://e.org/f", "--no-check")
    d4 = fixture_file("hf_papers_rss_thirdparty/hfpapers_feed_huangboming_2026-08-04.xml")
    d5 = fixture_file("hf_papers_rss_thirdparty/hfpapers_feed_huangboming_2026-08-05.xml")
    r = run(sqlite_url, "scrape", "hb", "--file", str(d4))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("hb: baseline: 27 entries stored")
    r = run(sqlite_url, "scrape", "hb", "--file", str(d5))
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[0] == "hb: 40 new, 0 updated (40 entries)"
    assert len(lines) == 41 and all(ln.startswith("  + 26") for ln in lines[1:])


def test_scrape_rejected_exits_non_zero_with_reason(sqlite_url: str, tmp_path: Path) -> None:
    """A broken page: the reason on one line and exit 1."""
    run(sqlite_url, "init", "--no-defaults")
    run(sqlite_url, "sources", "add", "trend", "hf-papers", "https://e.org/p", "--no-check")
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><h1>We are down</h1></body></html>")
    r = run(sqlite_url, "scrape", "trend", "--file", str(bad))
    assert r.returncode == 1
    assert r.stdout.startswith("trend: rejected: parse:")
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("args", [["scrape", "nope"], ["scrape", "--file", "/nonexistent"]])
def test_scrape_argument_errors_are_one_line(sqlite_url: str, args: list[str]) -> None:
    """Unknown source names and --file without one source are clear one-line errors."""
    run(sqlite_url, "init", "--no-defaults")
    r = run(sqlite_url, *args)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and r.stderr.startswith("error:")

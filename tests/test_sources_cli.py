"""``paperalerts parse KIND FILE``: JSON lines on stdout, one error line on stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from typer.testing import CliRunner

from conftest import fixture_file
from paperalerts.faces.cli import app

runner = CliRunner()
API_2024 = "hf_api_daily_papers/hf_api_daily_papers_2024-03-12.json"


def _lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_parse_prints_one_json_object_per_paper() -> None:
    """Each paper is one JSON line in the public `parse` shape, non-ASCII kept as is."""
    result = runner.invoke(app, ["parse", "hf-papers", str(fixture_file(
        "hf_papers_html/hf_papers_daily_2026-09-28.html"))])
    assert result.exit_code == 0, result.output
    rows = _lines(result.stdout)
    assert len(rows) == 28
    first = rows[0]
    assert first["id"] == "2609.31620" and first["upvotes"] == 110 and first["comments"] == 2
    assert first["published"] == "2026-09-25T00:00:00+00:00"
    assert first["authors"][:2] == ["Hongyang Du", "Yunfei Xie"]
    assert first["listing_date"] == "2026-09-28"
    assert "InternW0-Δ" in result.stdout  # ensure_ascii=False


def test_parse_reads_standard_input() -> None:
    """``-`` reads the body from stdin."""
    body = fixture_file(API_2024).read_bytes()
    result = runner.invoke(app, ["parse", "hf-api", "-"], input=body)
    assert result.exit_code == 0, result.output
    rows = _lines(result.stdout)
    assert [r["id"] for r in rows][:2] == ["2403.06634", "2403.06504"]
    assert len(rows) == 9


def test_parse_unknown_kind_fails_with_one_line() -> None:
    """An unknown kind exits 1 naming the known kinds, on stderr."""
    result = runner.invoke(app, ["parse", "rss", str(fixture_file(API_2024))])
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: unknown kind 'rss'; expected one of: hf-papers, hf-api, arxiv, feed, html"
    )
    assert result.stdout == ""


def test_parse_missing_file_fails_with_one_line() -> None:
    """A missing file exits 1 with the path and the reason."""
    result = runner.invoke(app, ["parse", "arxiv", "/nonexistent/feed.xml"])
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: cannot read /nonexistent/feed.xml: No such file or directory"
    )


def test_parse_error_fails_with_one_line() -> None:
    """A body of the wrong kind exits 1 with the ParseError's what-and-where, no traceback."""
    path = str(fixture_file(API_2024))
    result = runner.invoke(app, ["parse", "arxiv", path])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: not an RSS or Atom feed")
    assert f"(arxiv {path})" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_parse_through_the_installed_entry_point() -> None:
    """The real process: ``python -m``-free console entry via paperalerts.faces.cli.main."""
    path = str(fixture_file("arxiv_rss/arxiv_rss_cs.CL_2026-08-01_saturday_empty.xml"))
    code = "from paperalerts.faces.cli import main; main()"
    ok = subprocess.run([sys.executable, "-c", code, "parse", "arxiv", path],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and ok.stdout == "" and ok.stderr == ""
    bad = subprocess.run([sys.executable, "-c", code, "parse", "hf-api", path],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: invalid JSON at line 1 column 1")

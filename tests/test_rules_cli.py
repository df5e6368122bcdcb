"""``paperalerts match RULES PAPERS`` and ``paperalerts rules check QUERY`` (public output)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from conftest import fixture_file
from paperalerts.faces.cli import app

runner = CliRunner()

# Line numbers count every physical line, comments and blanks included.
RULES = """\
# rules for the CLI test
author:tramer

title:"video diffusion"
upvotes:>=38 comments:>=3
  # an indented comment
title:video* -diffusion
"""


def parsed_fixture(tmp_path: Path) -> Path:
    """The 2024-03-12 HF API fixture through `paperalerts parse`, saved as JSON lines."""
    result = runner.invoke(app, ["parse", "hf-api", str(fixture_file(
        "hf_api_daily_papers/hf_api_daily_papers_2024-03-12.json"))])
    assert result.exit_code == 0, result.output
    path = tmp_path / "papers.jsonl"
    path.write_text(result.stdout, encoding="utf-8")
    return path


def test_match_prints_matches_sorted_by_paper_then_rule(tmp_path: Path) -> None:
    """On the real 2024-03-12 papers: Tramèr's paper (2403.06634, 63 upvotes, 3 comments), the
    two video-diffusion titles, 2403.06504 (38 upvotes, 3 comments) and VideoMamba, exactly."""
    rules = tmp_path / "rules.txt"
    rules.write_text(RULES, encoding="utf-8")
    result = runner.invoke(app, ["match", str(rules), str(parsed_fixture(tmp_path))])
    assert result.exit_code == 0, result.output
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        {"paper": "2403.06098", "rule": 4, "terms": ['title:"video diffusion"']},
        {"paper": "2403.06504", "rule": 5, "terms": ["upvotes:>=38", "comments:>=3"]},
        {"paper": "2403.06634", "rule": 2, "terms": ["author:tramer"]},
        {"paper": "2403.06634", "rule": 5, "terms": ["upvotes:>=38", "comments:>=3"]},
        {"paper": "2403.06738", "rule": 4, "terms": ['title:"video diffusion"']},
        {"paper": "2403.06977", "rule": 7, "terms": ["title:video*"]},
    ]


def test_match_reads_papers_from_standard_input(tmp_path: Path) -> None:
    """``-`` reads the papers from stdin."""
    rules = tmp_path / "rules.txt"
    rules.write_text("author:tramer\n", encoding="utf-8")
    papers = parsed_fixture(tmp_path).read_text(encoding="utf-8")
    result = runner.invoke(app, ["match", str(rules), "-"], input=papers)
    assert result.exit_code == 0, result.output
    assert result.stdout == '{"paper": "2403.06634", "rule": 1, "terms": ["author:tramer"]}\n'


def test_match_stops_at_a_bad_rule_naming_file_line_and_position(tmp_path: Path) -> None:
    """A malformed rule is one error line (file, line, position) and exit 2; nothing printed."""
    rules = tmp_path / "rules.txt"
    rules.write_text("# ok\ndiffusion\n\nvideo AND (audio\n", encoding="utf-8")
    result = runner.invoke(app, ["match", str(rules), str(parsed_fixture(tmp_path))])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == f"error: {rules}, line 4: unbalanced parenthesis at 10\n"


def test_match_rejects_a_paper_line_that_is_not_a_paper(tmp_path: Path) -> None:
    """A papers line that is not a paper object is an error naming its line, exit 2."""
    rules = tmp_path / "rules.txt"
    rules.write_text("diffusion\n", encoding="utf-8")
    papers = tmp_path / "papers.jsonl"
    papers.write_text('{"id": "a", "title": "x"}\n\n{"title": "no id"}\n', encoding="utf-8")
    result = runner.invoke(app, ["match", str(rules), str(papers)])
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"error: {papers}, line 3: not a paper as JSON lines (the object has no id)"
    )


def test_match_reports_an_unreadable_file(tmp_path: Path) -> None:
    """A missing rules file is one error line, exit 2."""
    result = runner.invoke(app, ["match", str(tmp_path / "nope.txt"), "-"], input="")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: cannot read {tmp_path / 'nope.txt'}")


def test_rules_check_prints_the_normalised_form() -> None:
    """A valid rule prints its normalised form and exits 0."""
    result = runner.invoke(app, ["rules", "check", 'diffusion model -video OR "graph   nets"'])
    assert result.exit_code == 0, result.output
    assert result.stdout == '(diffusion AND model AND NOT video) OR "graph nets"\n'


def test_rules_check_shows_the_error_under_the_query() -> None:
    """A malformed rule prints the error, the query, and a caret under the position; exit 2."""
    result = runner.invoke(app, ["rules", "check", "diffusion AND (model"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        "error: unbalanced parenthesis at 14\n"
        "  diffusion AND (model\n"
        "                ^\n"
    )


def test_rules_check_suggests_a_field() -> None:
    """The difflib hint follows the position."""
    result = runner.invoke(app, ["rules", "check", "x titel:y"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: unknown field 'titel' at 2 — did you mean 'title'?", "  x titel:y", "    ^"]


def test_match_prints_exactly_what_json_dumps_of_the_oracle_prints(tmp_path: Path) -> None:
    """``paperalerts match``, as a real process through the console entry point, prints the
    oracle's matches byte for byte as ``json.dumps`` prints them (plain rules, read without the
    parser, and others alike), in large chunks rather than line by line."""
    import subprocess
    import sys

    from paperalerts.core.papers import Paper
    from paperalerts.core.rules import match_brute_force

    lines = ["diffusion", "video (diffusion OR model)", "model AND language", "# skipped",
             '"language model" OR author:tramer', "(benchmark OR dataset) -video", "Café*",
             "upvotes:>=38 comments:>=3"]
    rules = tmp_path / "rules.txt"
    rules.write_text("\n".join(lines) + "\n", encoding="utf-8")
    papers_path = parsed_fixture(tmp_path)
    papers = [Paper.from_json(json.loads(x)) for x in papers_path.read_text().splitlines()]
    keyed = [(n, q) for n, q in enumerate(lines, 1) if not q.startswith("#")]
    expected = "".join(
        json.dumps({"paper": m.paper_id, "rule": m.rule, "terms": list(m.terms)},
                   ensure_ascii=False) + "\n"
        for m in match_brute_force(papers, keyed)
    )
    assert expected.count("\n") > 10  # the fixture day gives this test something to print
    code = "from paperalerts.faces.entry import main; main()"
    done = subprocess.run([sys.executable, "-c", code, "match", str(rules), str(papers_path)],
                          capture_output=True, text=True, encoding="utf-8", timeout=120)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == expected


def test_match_help_and_mistakes_go_through_the_full_command_line(tmp_path: Path) -> None:
    """The fast entry runs only the two-file form; ``--help`` and a missing argument get the
    usual help and usage error."""
    import subprocess
    import sys

    code = "from paperalerts.faces.entry import main; main()"
    helped = subprocess.run([sys.executable, "-c", code, "match", "--help"],
                            capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0 and "RULES" in helped.stdout.upper()
    missing = subprocess.run([sys.executable, "-c", code, "match", "rules.txt"],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "Missing argument" in missing.stderr

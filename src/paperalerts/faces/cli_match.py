"""``paperalerts match RULES PAPERS`` (DESIGN §7): rules file x papers JSON lines -> matches as
JSON lines, ``{"paper": id, "rule": line number, "terms": [...]}`` sorted by paper, then rule.

It is the hot path of the command line (100k rules x a day's papers make millions of lines), so
it lives apart from the other commands: `paperalerts.faces.entry` runs it without importing the
database layer, and it writes its output in large chunks, each line assembled from the JSON the
index precomputed (`RuleIndex.match_terms_json`), byte for byte what ``json.dumps`` of the object
would print.
"""

from __future__ import annotations

import json
import sys
from typing import NoReturn

import typer

CHUNK = 1 << 20  # characters written at a time


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one clear error line and exit."""
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(code)


def _read(path: str) -> list[str]:
    try:
        if path == "-":
            return sys.stdin.read().splitlines()
        with open(path, encoding="utf-8") as f:
            return f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        fail(f"cannot read {path}: {getattr(e, 'strerror', None) or e}", 2)


def match_command(
    rules: str = typer.Argument(
        ..., help="Rules file: one query a line; blank lines and lines starting with # skipped."
    ),
    papers: str = typer.Argument(
        ..., help="Papers as JSON lines (what `paperalerts parse` prints); - reads standard input."
    ),
) -> None:
    """Match every rule against every paper (no database). Prints one JSON object a line,
    {"paper": id, "rule": line number, "terms": [...]}, sorted by paper, then rule."""
    from paperalerts.core.papers import Paper
    from paperalerts.core.rules import compile_rules, parse, term_frequencies
    from paperalerts.errors import RuleError

    queries = [  # numbered by physical line, comments included
        (n, line) for n, line in enumerate(_read(rules), 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    found = []
    for n, line in enumerate(_read(papers), 1):
        if line.strip():
            try:
                found.append(Paper.from_json(json.loads(line)))
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                fail(f"{papers}, line {n}: not a paper ({type(e).__name__}: {e})", 2)
    try:
        index = compile_rules(queries, term_frequencies(found))
    except RuleError:
        for n, line in queries:  # the first malformed line, again, to say which it is
            try:
                parse(line)
            except RuleError as e:
                fail(f"{rules}, line {n}: {e}", 2)
        raise
    write = sys.stdout.write
    buffered: list[str] = []
    size = 0
    for paper_id, keys, terms in index.match_terms_json(found):
        head = '{"paper": ' + json.dumps(paper_id, ensure_ascii=False) + ', "rule": '
        buffered += [f'{head}{k}, "terms": {t}}}\n' for k, t in zip(keys, terms, strict=True)]
        size += len(keys)
        if size >= CHUNK // 64:  # lines are some 64 characters
            write("".join(buffered))
            buffered.clear()
            size = 0
    write("".join(buffered))
    sys.stdout.flush()


def main(args: list[str]) -> None:
    """Run ``paperalerts match`` with `args` (what follows ``match`` on the command line)."""
    app = typer.Typer(add_completion=False)
    app.command()(match_command)
    app(args, prog_name="paperalerts match")

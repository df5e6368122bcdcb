"""``paperalerts match RULES PAPERS`` (DESIGN §7): rules file x papers JSON lines -> matches as
JSON lines, ``{"paper": id, "rule": line number, "terms": [...]}`` sorted by paper, then rule.

It is the hot path of the command line (100k rules x a day's papers make millions of lines), so
it lives apart from the other commands: `paperalerts.faces.entry` runs it without importing typer
or the database layer, and it writes its output in large chunks, each line assembled from the
JSON the index precomputed (`RuleIndex.match_terms_json`), byte for byte what ``json.dumps`` of
the object would print.
"""

from __future__ import annotations

import gc
import json
import sys
from typing import NoReturn

CHUNK = 1 << 20  # characters written at a time


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one clear error line and exit."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def _read(path: str) -> list[str]:
    try:
        if path == "-":
            return sys.stdin.read().splitlines()
        with open(path, encoding="utf-8") as f:
            return f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        fail(f"cannot read {path}: {getattr(e, 'strerror', None) or e}", 2)


def run(rules: str, papers: str) -> None:
    """Match every rule of the file `rules` against every paper of the JSON-lines file `papers`
    (``-``: standard input) and print the matches. Exits (SystemExit) on bad input."""
    from paperalerts.core.papers import Paper
    from paperalerts.core.rules import compile_rules, parse, term_frequencies
    from paperalerts.core.rules.analysed import AnalysedPaper
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
            except (ValueError, TypeError) as e:  # json.JSONDecodeError is a ValueError
                fail(f"{papers}, line {n}: not a paper as JSON lines ({e}); "
                     "expected what `paperalerts parse` prints", 2)
    analysed = [AnalysedPaper(p) for p in found]  # once, for the frequencies and the matching
    try:
        index = compile_rules(queries, term_frequencies(analysed))
    except RuleError:
        for n, line in queries:  # the first malformed line, again, to say which it is
            try:
                parse(line)
            except RuleError as e:
                fail(f"{rules}, line {n}: {e}", 2)
        raise
    # one run, one index: the collector need not walk the rules and papers again
    gc.freeze()
    chunks = index.render(
        analysed,
        lambda paper_id: '{"paper": ' + json.dumps(paper_id, ensure_ascii=False) + ', "rule": ',
        lambda rule: f'{rule}, "terms": ',
        "}\n",
    )
    write = sys.stdout.write
    buffered: list[str] = []
    size = 0
    for chunk in chunks:
        buffered.append(chunk)
        size += len(chunk)
        if size >= CHUNK:
            write("".join(buffered))
            buffered.clear()
            size = 0
    write("".join(buffered))
    sys.stdout.flush()


def runs_directly(args: list[str]) -> bool:
    """Whether `args` (what follows ``match``) are the usual two file arguments, which run here
    directly; anything else (``--help``, a mistake) goes through the full command line for its
    help and messages."""
    return len(args) == 2 and all(a == "-" or not a.startswith("-") for a in args)

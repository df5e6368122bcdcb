"""The ``paperalerts`` command (DESIGN §7). Its commands and output shapes are a public contract.

Errors are one clear line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
from rich.console import Console

from paperalerts.errors import PaperAlertsError

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Research-paper alerts.")
subscribers_app = typer.Typer(no_args_is_help=True, help="Manage subscribers.")
rules_app = typer.Typer(no_args_is_help=True, help="Check, preview and manage keyword rules.")
digests_app = typer.Typer(no_args_is_help=True, help="Build and send digests.")
admin_app = typer.Typer(no_args_is_help=True, help="Manage admin accounts.")
app.add_typer(subscribers_app, name="subscribers")
app.add_typer(rules_app, name="rules")
app.add_typer(digests_app, name="digests")
app.add_typer(admin_app, name="admin")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one clear error line and exit."""
    err.print(f"error: {message}", markup=False)
    raise typer.Exit(code)


# --- commands are registered below, one section per area -------------------------------------

# [parse]
@app.command("parse")
def parse_command(
    kind: str = typer.Argument(..., help="hf-papers, hf-api, arxiv or feed."),
    file: str = typer.Argument(..., help="A saved page or feed; - reads standard input."),
) -> None:
    """Parse a saved page or feed and print its papers as JSON lines (no database)."""
    import json

    from paperalerts.core import sources
    from paperalerts.errors import ParseError

    if kind not in sources.KINDS:
        fail(f"unknown kind {kind!r}; expected one of: {', '.join(sources.KINDS)}")
    if file == "-":
        body, where = sys.stdin.buffer.read(), "<stdin>"
    else:
        try:
            with open(file, "rb") as f:
                body = f.read()
        except OSError as e:
            fail(f"cannot read {file}: {e.strerror or e}")
        where = file
    try:
        papers = sources.parse(kind, body, where)
    except ParseError as e:
        fail(str(e))
    for paper in papers:
        typer.echo(json.dumps(paper.to_json(), ensure_ascii=False))


# [match]
@app.command("match")
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
    from paperalerts.faces.cli_match import run

    run(rules, papers)


# [rules]
@rules_app.command("check")
def rules_check(query: str = typer.Argument(..., help="The rule, quoted as one argument.")) -> None:
    """Print the rule's normalised form; or the error, the rule, and a caret under the
    position of the problem (exit 2)."""
    from paperalerts.core.rules import parse, to_text
    from paperalerts.errors import RuleError

    try:
        typer.echo(to_text(parse(query)))
    except RuleError as e:
        shown = "".join(" " if c.isspace() else c for c in query)  # keep the caret aligned
        typer.echo(f"error: {e}\n  {shown}\n  {' ' * e.position}^", err=True)
        raise typer.Exit(2) from None


# [db]
def _register_db_commands() -> None:
    from paperalerts.faces import cli_db, cli_ops, cli_people

    cli_db.register(app)
    cli_people.register(subscribers_app, rules_app)
    from paperalerts.faces.cli_web import register as register_web

    register_web(app, admin_app)
    cli_ops.register(app, digests_app)
    from paperalerts.faces.cli_run import register as register_run

    register_run(app)


_register_db_commands()


def main() -> None:
    """Console-script entry point: run the app, turning our errors into one line."""
    try:
        app()
    except PaperAlertsError as e:
        err.print(f"error: {e}", markup=False)
        sys.exit(1)

"""The ``paperalerts`` command. Its commands and output shapes are a public contract.

Errors are one clear line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import sys
from typing import Any

import typer
import typer.main
from typer.core import TyperOption

from paperalerts.errors import PaperAlertsError
from paperalerts.faces import (
    cli_db,
    cli_import,
    cli_mailbox,
    cli_ops,
    cli_people,
    cli_resend,
    cli_rules,
    cli_run,
    cli_sources,
    cli_tokens,
    cli_topics,
    cli_web,
)
from paperalerts.faces.cli_console import err, fail
from paperalerts.faces.cli_sources import SelectorOption, selectors_from_flags

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Research-paper alerts.")
subscribers_app = typer.Typer(no_args_is_help=True, help="Manage subscribers.")
rules_app = typer.Typer(no_args_is_help=True, help="Check, preview and manage keyword rules.")
digests_app = typer.Typer(no_args_is_help=True, help="Build and send digests.")
admin_app = typer.Typer(no_args_is_help=True, help="Manage admin accounts.")
app.add_typer(subscribers_app, name="subscribers")
app.add_typer(rules_app, name="rules")
app.add_typer(digests_app, name="digests")
app.add_typer(admin_app, name="admin")



# The order `paperalerts --help` lists commands in: getting started first, then the daily work,
# then the plumbing that operators and scripts call.
COMMAND_ORDER = (
    "run", "demo", "init", "status", "subscribers", "rules", "topics", "digests", "sources",
    "scrape", "mailbox", "web", "admin", "tokens", "worker", "beat", "tick", "parse", "match",
)


# --- commands are registered below, one section per area -------------------------------------

# [parse]
@app.command("parse")
def parse_command(
    kind: str = typer.Argument(..., help="hf-papers, hf-api, arxiv, feed or html."),
    file: str = typer.Argument(..., help="A saved page or feed; - reads standard input."),
    selector: SelectorOption = None,
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
    options = selectors_from_flags(selector or []).to_options() if kind == "html" else None
    try:
        papers = sources.parse(kind, body, where, options)
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
    """Match every rule against every paper (no database).

    Prints one JSON object a line, {"paper": id, "rule": line number, "terms": [...]}, sorted by
    paper, then rule."""
    from paperalerts.faces.cli_match import run

    run(rules, papers)


# [rules]
@rules_app.command("check")
def rules_check(query: str = typer.Argument(..., help="The rule, quoted as one argument.")) -> None:
    """Print the rule's normalised form, or what is wrong with it (exit 2).

    The problem is shown with the rule and a caret under its position: a parse error, or a
    lowercase operator word ("diffusion or video"), with the fix. The same check as every other
    surface (`rules.lint.check_rule_text`)."""
    from paperalerts.core.rules.lint import check_rule_text

    verdict = check_rule_text(query)
    if verdict.normalized is not None:
        typer.echo(verdict.normalized)
        return
    shown = "".join(" " if c.isspace() else c for c in query)  # keep the caret aligned
    typer.echo(f"error: {verdict.message}\n  {shown}\n  {' ' * (verdict.position or 0)}^",
               err=True)  # fmt: skip
    raise typer.Exit(2)


# The commands over the database live one area per module; each attaches itself here.
cli_db.register(app)
cli_sources.register(app)
cli_people.register(subscribers_app, rules_app)
cli_rules.register(rules_app)
cli_topics.register(app)
cli_tokens.register(app)
cli_import.register(subscribers_app)
cli_web.register(app, admin_app)
cli_ops.register(app, digests_app)
cli_resend.register(digests_app)
cli_run.register(app)
cli_mailbox.register(app)


def build_command() -> Any:
    """The click command behind `app`, tidied for people reading `--help`: commands in
    `COMMAND_ORDER` (unknown ones after), and flags shown without a ``<bool>`` type column."""
    command = typer.main.get_command(app)
    commands: dict[str, object] | None = getattr(command, "commands", None)
    if commands is not None:
        rank = {name: i for i, name in enumerate(COMMAND_ORDER)}
        ordered = sorted(commands, key=lambda n: (rank.get(n, len(rank)), n))
        command.commands = {n: commands[n] for n in ordered}  # type: ignore[attr-defined]
    _one_line_summaries(command)
    return command


def _one_line_summaries(command: Any) -> None:
    """Each command's line in its group's listing: the first paragraph of its help with the
    docstring's line breaks joined (rich keeps them, cutting sentences mid-line), recursively."""
    for sub in (getattr(command, "commands", None) or {}).values():
        if sub.help and not sub.short_help:
            sub.short_help = " ".join(sub.help.strip().split("\n\n")[0].split())
        _one_line_summaries(sub)


def _flag_type(self: TyperOption, ctx: Any) -> str | None:
    """Typer 0.29 shows every flag's type as ``<bool>`` in rich help: noise on every flag
    (including --help). Flags show no type column; other options keep theirs."""
    return None if self.is_flag else _option_type(self, ctx)


_option_type = TyperOption.display_type_rich
TyperOption.display_type_rich = _flag_type  # type: ignore[method-assign]


def main() -> None:
    """Console-script entry point: run the app, turning our errors into one line."""
    try:
        build_command()(prog_name="paperalerts")
    except PaperAlertsError as e:
        err.print(f"error: {e}", markup=False)
        sys.exit(1)

"""Where the ``paperalerts`` command writes: standard output, standard error, and `fail`.

Every ``cli_*`` module imports these from here (not from cli.py, which imports them all), so
the command modules form no import circle.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from rich.console import Console

from paperalerts.core.words import plural as plural  # the CLI's lines count in words too


def _console(stderr: bool = False) -> Console:
    """A rich console; when the stream is not a terminal (piped, captured) lines and tables keep
    their natural width instead of being cut at rich's default of 80 columns."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else 10_000
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=width)


out = _console()
err = _console(stderr=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one clear error line on standard error and exit with `code`."""
    err.print(f"error: {message}", markup=False)
    raise typer.Exit(code)


@contextmanager
def checked() -> Iterator[None]:
    """Turn the service layer's InvalidInput into one error line: exit 2 for a rule (the
    position is in the message), 1 for anything else."""
    from paperalerts.errors import InvalidInput

    try:
        yield
    except InvalidInput as e:
        if e.field in ("query", "rules"):
            fail(f"invalid rule: {e.message}", 2)
        fail(e.message)


def checked_rule(query: str) -> str:
    """The normalised rule; a rule the shared check refuses (a parse error, or a lowercase
    'or', say: `core.rules.lint.check_rule_text`) is one error line with the fix, exit 2."""
    from paperalerts.core.subscribers import check_rule

    with checked():
        return check_rule(query)
    raise AssertionError


def quiet_step_logs() -> None:
    """For commands that print every outcome themselves (scrape, tick): the steps' warnings,
    meant for worker logs, would repeat each failure, so only errors pass."""
    logging.getLogger("paperalerts").setLevel(logging.ERROR)

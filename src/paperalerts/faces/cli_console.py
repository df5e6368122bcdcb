"""Where the ``paperalerts`` command writes: standard output, standard error, and `fail`.

Every ``cli_*`` module imports these from here (not from cli.py, which imports them all), so
the command modules form no import circle.
"""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one clear error line on standard error and exit with `code`."""
    err.print(f"error: {message}", markup=False)
    raise typer.Exit(code)

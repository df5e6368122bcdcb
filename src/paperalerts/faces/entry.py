"""The ``paperalerts`` console script. ``paperalerts match`` starts without importing the web,
database and mail layers the other commands register (half a second of a run that otherwise
takes a few); everything else goes to `paperalerts.faces.cli`."""

from __future__ import annotations

import sys


def main() -> None:
    """Console-script entry point."""
    if sys.argv[1:2] == ["match"]:
        from paperalerts.faces.cli_match import run, runs_directly

        if runs_directly(sys.argv[2:]):
            run(*sys.argv[2:])
            return
    from paperalerts.faces.cli import main as cli_main

    cli_main()

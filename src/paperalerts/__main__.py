"""`python -m paperalerts` runs the CLI."""

from paperalerts.cli import main

main()

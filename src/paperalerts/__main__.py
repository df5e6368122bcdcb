"""`python -m paperalerts` runs the CLI."""

from paperalerts.faces.cli import main

main()

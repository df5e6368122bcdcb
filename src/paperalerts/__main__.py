"""`python -m paperalerts` runs the CLI."""

from paperalerts.faces.entry import main

main()

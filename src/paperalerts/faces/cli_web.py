"""CLI commands for the web side: ``paperalerts web`` and ``paperalerts admin create``."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from paperalerts.edges.config import get_settings
from paperalerts.faces.cli_console import fail, out


def web(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve the web app: sign-up and preference pages, the admin, the JSON API (/api/v1)."""
    import uvicorn

    from paperalerts.faces.cli_db import open_db
    from paperalerts.faces.web import create_app

    settings = get_settings()
    app = create_app(settings, session_factory=open_db(settings))
    # Forwarded headers are read by the app, from TRUSTED_PROXIES only (uvicorn's own
    # proxy_headers would believe any loopback peer).
    uvicorn.run(app, host=host, port=port, proxy_headers=False, log_level="info")


def admin_create(
    username: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create an admin (or set a new password for an existing one). The password comes from
    PAPERALERTS_ADMIN_PASSWORD, else standard input when it is not a terminal (or with
    --password-stdin), else it is asked for twice."""
    from paperalerts.edges.db.engine import transaction
    from paperalerts.faces.cli_db import open_db
    from paperalerts.faces.web.auth import upsert_admin

    settings = get_settings()
    if settings.admin_password and not password_stdin:
        password = settings.admin_password
    elif password_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            fail("no password on standard input: pipe one line, or set "
                 "PAPERALERTS_ADMIN_PASSWORD")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    factory = open_db(settings)
    try:
        with transaction(factory) as s:
            _, created = upsert_admin(s, username, password)
    except ValueError as e:
        fail(str(e))
    verb = "created" if created else "updated the password of"
    out.print(f"{verb} admin {username.strip()}", markup=False)


def register(app: typer.Typer, admin_app: typer.Typer) -> None:
    app.command("web")(web)
    admin_app.command("create")(admin_create)

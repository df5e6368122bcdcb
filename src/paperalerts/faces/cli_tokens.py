"""CLI: API tokens (`tokens create|list|revoke`), as on the admin's Tokens page, through the same
service (`pipeline.api_tokens`: hashed at rest, audited)."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy import select

from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.faces.cli_console import checked, err, fail, out
from paperalerts.faces.cli_db import open_db
from paperalerts.pipeline import api_tokens

tokens_app = typer.Typer(no_args_is_help=True, help="Manage API tokens (/api/v1).")


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Argument(help="Who or what uses it; API changes are audited "
                                             "as api:NAME.")],
) -> None:
    """Make an API token and print it on standard output, once: only its hash is kept."""
    with checked(), transaction(open_db()) as s:
        row, token = api_tokens.create_token(s, name, "cli")
        tid = row.id
    typer.echo(token)
    err.print(f"created token {tid} ({name.strip()}): send it as "
              "'Authorization: Bearer TOKEN'; it is not shown again", markup=False)


@tokens_app.command("list")
def tokens_list() -> None:
    """One line per token, tab-separated: id, name, active or revoked, created, last used."""
    with open_db()() as s:
        for t in s.scalars(select(m.ApiToken).order_by(m.ApiToken.id)):
            used = t.last_used_at.isoformat(timespec="seconds") if t.last_used_at else "never"
            cells = [str(t.id), t.name, "revoked" if t.revoked else "active",
                     t.created_at.isoformat(timespec="seconds"), used]
            typer.echo("\t".join(cells))


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: Annotated[int, typer.Argument(help="The token's id (from `tokens list`).")],
) -> None:
    """Revoke a token: requests with it are refused from now on."""
    with transaction(open_db()) as s:
        row = s.get(m.ApiToken, token_id)
        if row is None:
            fail(f"no API token {token_id} (`paperalerts tokens list` shows them)")
        changed = api_tokens.revoke_token(s, row, "cli")
        name = row.name
    out.print(f"{'revoked' if changed else 'already revoked:'} token {token_id} ({name})",
              markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(tokens_app, name="tokens")

"""CLI: opening the database for every command, and `init` (registered by cli.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.core.defaults import DEFAULT_SOURCES
from paperalerts.edges.config import CONFIG_FILE, Settings, get_settings, sqlite_path
from paperalerts.edges.db import (
    current_revision,
    head_revision,
    make_engine,
    repo,
    session_factory,
    upgrade,
)
from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from paperalerts.faces.cli_console import fail, out


def where_from(settings: Settings) -> str:
    """How the database was chosen, for messages: the setting, the config file, or neither."""
    if settings.config:
        return f"from {settings.config}"
    if "database_url" in settings.model_fields_set:
        return "from PAPERALERTS_DATABASE_URL"
    return (f"the default: no PAPERALERTS_DATABASE_URL, no {CONFIG_FILE} in {Path.cwd()} or "
            "above, no PAPERALERTS_CONFIG")


def shown(url: str) -> str:
    """A database URL fit to print: its password hidden."""
    return make_url(url).render_as_string(hide_password=True)


def open_db(settings: Settings | None = None) -> sessionmaker[Session]:
    """A session factory on the configured database; refuses a missing database (a SQLite file
    is never created on the side: only `init`, `run` and `demo` create one), an uninitialised
    or an old schema, each time naming the database and where its name came from."""
    settings = settings or get_settings()
    url = settings.database_url
    path = sqlite_path(url)
    if path is not None and not path.exists():
        fail(f"no paperalerts database at {path} ({where_from(settings)}): run the command in "
             "your installation's directory, or point PAPERALERTS_DATABASE_URL or "
             f"PAPERALERTS_CONFIG at it; `paperalerts init` there creates a new one")
    engine = make_engine(url)
    try:
        current = current_revision(engine)
    except Exception as e:  # any driver error becomes one clear line
        fail(f"cannot open the database {shown(url)}: {e}")
    if current is None:
        fail(f"the database {shown(url)} is not initialised ({where_from(settings)}): "
             "run `paperalerts init`")
    if current != head_revision(engine):
        fail(f"the database {shown(url)} is at schema {current}, not the latest: "
             "run `paperalerts init`")
    return session_factory(engine)


def now_utc() -> datetime:
    return datetime.now(UTC)


def init(
    no_defaults: Annotated[bool, typer.Option("--no-defaults", help="Add no sources.")] = False,
) -> None:
    """Create or upgrade the database; add the default sources unless told not to."""
    settings = get_settings()
    engine = make_engine(settings.database_url)
    try:
        before = current_revision(engine)
        upgrade(engine)
    except Exception as e:  # one clear line instead of a traceback
        fail(f"cannot initialise {settings.database_url}: {e}")
    after = current_revision(engine)
    verb = "created" if before is None else ("upgraded" if before != after else "up to date")
    out.print(f"database {verb} at revision {after} ({shown(settings.database_url)})",
              markup=False)
    _write_config(settings, created=before is None)
    if no_defaults:
        return
    added = []
    with transaction(session_factory(engine)) as s:
        for d in DEFAULT_SOURCES:
            if repo.source_by_name(s, d.name) is None:
                s.add(m.Source(name=d.name, kind=d.kind, url=d.url, every_seconds=d.every_seconds))
                added.append(d.name)
    if added:
        out.print(f"added default sources: {', '.join(added)}")


def _write_config(settings: Settings, *, created: bool) -> None:
    """After creating a SQLite database by default (no setting, no config file), record it in a
    paperalerts.toml beside it, so every command run in that directory or below finds it."""
    path = sqlite_path(settings.database_url)
    if not created or path is None or settings.config or "database_url" in \
            settings.model_fields_set:
        return
    config = path.parent / CONFIG_FILE
    if not config.exists():
        config.write_text(
            "# paperalerts settings for this installation (names as PAPERALERTS_* without the\n"
            "# prefix, in lower case; the environment overrides them). Commands run here or in\n"
            "# a directory below find this file; elsewhere set PAPERALERTS_CONFIG to its path.\n"
            f'database_url = "sqlite:///{path.name}"\n',
            encoding="utf-8",
        )
        out.print(f"wrote {config}", markup=False)


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the main app."""
    app.command("init")(init)

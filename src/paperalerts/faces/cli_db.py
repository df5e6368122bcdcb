"""CLI: opening the database for every command, and `init` (registered by cli.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.core.defaults import DEFAULT_SOURCES
from paperalerts.edges.config import Settings, get_settings
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


def open_db(settings: Settings | None = None) -> sessionmaker[Session]:
    """A session factory on the configured database; refuses an uninitialised or old schema."""
    settings = settings or get_settings()
    engine = make_engine(settings.database_url)
    try:
        current = current_revision(engine)
    except Exception as e:  # any driver error becomes one clear line
        fail(f"cannot open the database {settings.database_url}: {e}")
    if current is None:
        fail("the database is not initialised: run `paperalerts init`")
    if current != head_revision(engine):
        fail(f"the database schema is at {current}, not the latest: run `paperalerts init`")
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
    out.print(f"database {verb} at revision {after} ({settings.database_url})")
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


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the main app."""
    app.command("init")(init)

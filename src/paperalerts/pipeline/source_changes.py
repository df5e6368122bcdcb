"""Changing the watched sources: add, edit, enable and disable, for the admin and the CLI alike,
each change audited (who, before, after) in the caller's transaction. Values come in checked
(name, kind, URL, interval, selectors: `core.sources`, `core.intervals`); deleting a source is
`edges.db.repo.delete_source`, which audits too."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from paperalerts.edges.db import models as m
from paperalerts.edges.db import repo
from paperalerts.errors import InvalidInput


def source_state(src: m.Source) -> dict[str, Any]:
    """What the audit log records of a source."""
    return {"name": src.name, "kind": src.kind, "url": src.url, "every": src.every_seconds,
            "enabled": src.enabled, "backfill": src.backfill, "options": src.options,
            "display_name": src.display_name}


def save_source(
    s: Session, src: m.Source | None, actor: str, *, name: str, kind: str, url: str,
    every_seconds: int, enabled: bool = True, backfill: bool = False,
    options: dict[str, Any] | None = None, display_name: str | None = None,
) -> m.Source:
    """Create (`src` None) or change a source (`display_name` None: keep it); InvalidInput("name")
    when another source has the name. One audit row when anything changed."""
    clash = repo.source_by_name(s, name)
    if clash is not None and clash is not src:
        raise InvalidInput("name", f"a source named {name!r} exists already")
    before = source_state(src) if src else None
    if src is None:
        src = m.Source(name=name, kind=kind, url=url)
        s.add(src)
    src.name, src.kind, src.url, src.every_seconds = name, kind, url, every_seconds
    src.enabled, src.backfill, src.options = enabled, backfill, options
    if display_name is not None or before is None:
        src.display_name = (display_name or "").strip()[:200]
    s.flush()
    if before != source_state(src):
        repo.audit(s, "update" if before else "create", "source", src.id, before,
                   source_state(src), actor)
    return src


def set_enabled(s: Session, src: m.Source, enabled: bool, actor: str) -> bool:
    """Enable or disable a source; whether it changed (audited as ``enable``/``disable``)."""
    if src.enabled == enabled:
        return False
    before = source_state(src)
    src.enabled = enabled
    repo.audit(s, "enable" if enabled else "disable", "source", src.id, before,
               source_state(src), actor)
    return True

"""Admin: sources — health (ok / degraded / failing, last success, last error, entries last
time, consecutive failures), add, edit, enable, disable, and "scrape now". A new source (or a
changed URL, kind or selectors) is fetched and parsed before it is saved, as the CLI does;
"Preview" shows the papers the page lists as its kind (for html, what the selectors extract)
before anything is saved."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from paperalerts.core import sources as source_kinds
from paperalerts.core.intervals import format_interval, parse_interval
from paperalerts.core.sources import html_list
from paperalerts.edges.db import models as m
from paperalerts.edges.db import repo
from paperalerts.edges.db.engine import transaction
from paperalerts.errors import FetchError, InvalidInput, ParseError
from paperalerts.faces.web import flash
from paperalerts.faces.web.auth import Admin
from paperalerts.faces.web.context import WebContext, ctx
from paperalerts.faces.web.templating import not_found, page
from paperalerts.pipeline import source_changes
from paperalerts.pipeline.source_changes import source_state as source_state
from paperalerts.pipeline.source_check import SourceCheckFailed, check_source_page

if TYPE_CHECKING:
    from paperalerts.pipeline.scrape import FetcherLike

router = APIRouter(prefix="/sources")
# An html source's selectors, one form field each (sel_item, sel_title, ...); checked by html_list.
Selector = Annotated[str, Form(max_length=2000)]
log = logging.getLogger(__name__)
NOTICES = {"saved": "Source saved.", "added": "Source added.", "enabled": "Source enabled.",
           "disabled": "Source disabled.", "deleted": "Source deleted.",
           "scraped": "Scrape finished: see the health columns and the snapshots."}


def _selector_fields(options: dict[str, Any] | None) -> dict[str, str]:
    """The form's ``sel_<field>`` values from a source's stored options."""
    stored = (options or {}).get("selectors") or {}
    return {f"sel_{f}": str(stored.get(f, "")) for f in html_list.FIELDS}


def check_selectors(kind: str, form: dict[str, Any]) -> html_list.Selectors | None:
    """The checked selectors of an html source's form (None for other kinds); InvalidInput on the
    ``sel_<field>`` input naming the missing or invalid selector."""
    return selectors_of(form) if kind == html_list.KIND else None


def selectors_of(form: dict[str, Any]) -> html_list.Selectors:
    """The checked selectors in the form's ``sel_<field>`` inputs, or InvalidInput on the first
    missing or invalid one (its message names the selector)."""
    try:
        return html_list.selectors_from_options(
            {f: form.get(f"sel_{f}", "") for f in html_list.FIELDS})
    except html_list.SelectorError as e:
        raise InvalidInput(f"sel_{e.field}", str(e)) from e


def check_source(name: str, kind: str, url: str, every: str) -> tuple[str, str, str, int]:
    """Validated (name, kind, url, seconds); InvalidInput naming the field otherwise."""
    name, url = name.strip(), url.strip()
    if not 1 <= len(name) <= 100:
        raise InvalidInput("name", "a source needs a name of 1 to 100 characters")
    if kind not in source_kinds.KINDS:
        raise InvalidInput("kind", f"kind must be one of {', '.join(source_kinds.KINDS)}")
    if not url.startswith(("http://", "https://")) or any(c.isspace() for c in url):
        raise InvalidInput("url", f"the URL must be http(s) without spaces: {url!r}")
    try:
        seconds = parse_interval(every)
    except ValueError as e:
        raise InvalidInput("every", str(e)) from e
    return name, kind, url, seconds


@router.get("")
def list_sources(request: Request, admin: Admin) -> Response:
    with ctx(request).factory() as s:
        rows = list(s.scalars(select(m.Source).order_by(m.Source.name)))
    return page(request, "admin/sources.html", {
        "rows": rows, "format_interval": format_interval,
        "notice": NOTICES.get(request.query_params.get("done", ""))})


def _source_page(request: Request, source_id: int | None, form: dict[str, Any],
                 error: InvalidInput | None = None, status: int = 200,
                 preview: html_list.Extraction | None = None,
                 preview_error: str | None = None) -> Response:
    snapshots: list[m.Snapshot] = []
    if source_id is not None:
        with ctx(request).factory() as s:
            snapshots = list(s.scalars(select(m.Snapshot).where(m.Snapshot.source_id == source_id)
                                       .order_by(m.Snapshot.id.desc()).limit(20)))
    return page(request, "admin/source.html", {
        "source_id": source_id, "form": form, "error": error, "kinds": source_kinds.KINDS,
        "selector_fields": html_list.FIELDS, "required_selectors": html_list.REQUIRED,
        "preview": preview, "preview_error": preview_error, "snapshots": snapshots,
        "notice": NOTICES.get(request.query_params.get("done", ""))},
        status=status)


@router.get("/new")
def new_form(request: Request, admin: Admin) -> Response:
    f = flash.take(request)
    form = {"name": "", "kind": "feed", "url": "", "every": "30m", "enabled": True,
            "backfill": False, **_selector_fields(None), **(f.form if f else {})}
    return _source_page(request, None, form, flash.form_error(f), status=f.status if f else 200)


@router.get("/{source_id:id}")
def edit_form(request: Request, admin: Admin, source_id: int) -> Response:
    with ctx(request).factory() as s:
        src = s.get(m.Source, source_id)
    if src is None:
        return not_found(request, f"No source {source_id}.")
    f = flash.take(request)
    form = {**source_state(src), "every": format_interval(src.every_seconds),
            **_selector_fields(src.options), **(f.form if f else {})}
    return _source_page(request, source_id, form, flash.form_error(f),
                        status=f.status if f else 200)


@router.post("")
@router.post("/{source_id:id}")
def save(
    request: Request, admin: Admin,
    name: Annotated[str, Form(max_length=100)],
    kind: Annotated[str, Form(max_length=20)],
    url: Annotated[str, Form(max_length=2000)],
    every: Annotated[str, Form(max_length=20)] = "30m",
    enabled: Annotated[str, Form(max_length=5)] = "",
    backfill: Annotated[str, Form(max_length=5)] = "",
    sel_item: Selector = "", sel_title: Selector = "", sel_link: Selector = "",
    sel_id: Selector = "", sel_abstract: Selector = "", sel_authors: Selector = "",
    nocheck: Annotated[str, Form(max_length=5)] = "",
    source_id: int | None = None,
) -> Response:
    """Create or edit a source. A new source, or a changed URL, kind or selectors, is fetched
    once and parsed first, as `paperalerts sources add` does (``nocheck`` skips that, e.g. for
    a source that is down right now)."""
    form = {"name": name, "kind": kind, "url": url, "every": every, "enabled": bool(enabled),
            "backfill": bool(backfill), "sel_item": sel_item, "sel_title": sel_title,
            "sel_link": sel_link, "sel_id": sel_id, "sel_abstract": sel_abstract,
            "sel_authors": sel_authors}
    try:
        name, kind, url, seconds = check_source(name, kind, url, every)
        selectors = check_selectors(kind, form)
        options = selectors.to_options() if selectors else None
        if not nocheck and _changed_page(request, source_id, kind, url, options):
            _check_page(request, kind, url, options)
        with transaction(ctx(request).factory) as s:
            src = s.get(m.Source, source_id) if source_id is not None else None
            if source_id is not None and src is None:  # deleted meanwhile: never recreate it
                return not_found(request, f"No source {source_id}.")
            sid = source_changes.save_source(
                s, src, admin.actor, name=name, kind=kind, url=url, every_seconds=seconds,
                enabled=bool(enabled), backfill=bool(backfill), options=options,
            ).id
    except InvalidInput as e:
        target = f"/admin/sources/{source_id}" if source_id is not None else "/admin/sources/new"
        return flash.back(request, target, e, form, fallback=lambda e: _source_page(
            request, source_id, form, e, status=400))
    return RedirectResponse(f"/admin/sources/{sid}?done={'saved' if source_id else 'added'}",
                            status_code=303)


@router.post("/{source_id:id}/delete")
def delete(request: Request, admin: Admin, source_id: int) -> Response:
    """Delete a source (the page asks first): see `repo.delete_source` for what is kept."""
    with transaction(ctx(request).factory) as s:
        src = s.get(m.Source, source_id)
        if src is None:
            return not_found(request, f"No source {source_id}.")
        repo.delete_source(s, src, admin.actor)
    return RedirectResponse("/admin/sources?done=deleted", status_code=303)


@router.post("/preview")
def preview(
    request: Request, admin: Admin,
    kind: Annotated[str, Form(max_length=20)],
    url: Annotated[str, Form(max_length=2000)],
    name: Annotated[str, Form(max_length=100)] = "",
    every: Annotated[str, Form(max_length=20)] = "30m",
    enabled: Annotated[str, Form(max_length=5)] = "",
    backfill: Annotated[str, Form(max_length=5)] = "",
    sel_item: Selector = "", sel_title: Selector = "", sel_link: Selector = "",
    sel_id: Selector = "", sel_abstract: Selector = "", sel_authors: Selector = "",
    source_id: Annotated[int | None, Form()] = None,
) -> Response:
    """Fetch the page and show the papers it lists as the chosen kind (for html, what the
    selectors extract and why items were skipped); saves nothing. The form comes back as
    typed, so Save (or another Preview) follows."""
    form = {"name": name, "kind": kind, "url": url, "every": every, "enabled": bool(enabled),
            "backfill": bool(backfill), "sel_item": sel_item, "sel_title": sel_title,
            "sel_link": sel_link, "sel_id": sel_id, "sel_abstract": sel_abstract,
            "sel_authors": sel_authors}
    try:
        check_source(name or "preview", kind, url, every)
        selectors = selectors_of(form) if kind == html_list.KIND else None
    except InvalidInput as e:
        return _source_page(request, source_id, form, e, status=400)
    url = url.strip()
    try:
        with _fetcher(request) as fetcher:
            if selectors is not None:  # what each item gave, and why items were skipped
                found = html_list.extract(fetcher.fetch(url).body, url, selectors)
            else:
                papers = check_source_page(fetcher, kind, url).papers
                found = html_list.Extraction(papers, len(papers))
    except (FetchError, ParseError, SourceCheckFailed) as e:
        return _source_page(request, source_id, form, preview_error=str(e))
    return _source_page(request, source_id, form, preview=found)


@contextmanager
def _fetcher(request: Request) -> Iterator[FetcherLike]:
    fetcher = ctx(request).fetcher_factory()
    try:
        yield fetcher
    finally:
        close = getattr(fetcher, "close", None)
        if callable(close):
            close()


def _changed_page(request: Request, source_id: int | None, kind: str, url: str,
                  options: dict[str, Any] | None) -> bool:
    """Whether saving changes what is fetched and how it is read (a new source included)."""
    if source_id is None:
        return True
    with ctx(request).factory() as s:
        src = s.get(m.Source, source_id)
        return src is None or (src.kind, src.url, src.options) != (kind, url, options)


def _check_page(request: Request, kind: str, url: str, options: dict[str, Any] | None) -> None:
    """`pipeline.source_check` with the site's fetcher; InvalidInput on ``url`` when it fails."""
    context = ctx(request)
    try:
        with _fetcher(request) as fetcher:
            check_source_page(fetcher, kind, url, options,
                              allow_private=context.settings.allow_private_urls)
    except SourceCheckFailed as e:
        raise InvalidInput("url", f"{e}. Nothing was saved; tick \"save without checking\" "
                           "to save it anyway.") from e


@router.post("/{source_id:id}/{action:str}")
def toggle(request: Request, admin: Admin, source_id: int, action: str,
           background: BackgroundTasks) -> Response:
    """``enable``, ``disable`` or ``scrape`` (runs after the response, in the worker pool)."""
    context = ctx(request)
    if action not in ("enable", "disable", "scrape"):
        return page(request, "public/message.html", {
            "title": "Unknown action", "message": f"{action!r} is not a source action.",
            "signup": False}, status=404)
    with transaction(context.factory) as s:
        src = s.get(m.Source, source_id)
        if src is None:
            return not_found(request, f"No source {source_id}.")
        if action != "scrape":
            source_changes.set_enabled(s, src, action == "enable", admin.actor)
    if action == "scrape":
        background.add_task(scrape_now, context, source_id)
        return RedirectResponse(f"/admin/sources/{source_id}?done=scraped", status_code=303)
    return RedirectResponse(f"/admin/sources?done={action}d", status_code=303)


def scrape_now(context: WebContext, source_id: int) -> None:
    """Scrape one source with a real fetcher, then match what it found."""
    from paperalerts.pipeline import match_new_events, scrape_source

    fetcher = context.fetcher_factory()
    try:
        outcome = scrape_source(context.factory, source_id, fetcher=fetcher, now=context.clock(),
                                failing_after=context.settings.failing_after)
        log.info("scrape now of source %s: %s", source_id, outcome)
        match_new_events(context.factory, now=context.clock())
    finally:
        close = getattr(fetcher, "close", None)
        if callable(close):
            close()

"""Emails as templates: a name + a context -> subject, text and HTML.

``templates/email/<name>/{subject.txt, body.txt, body.html}`` extend ``email/_base/``. One Jinja
environment per template folder is built once and kept (module-level cache); HTML is autoescaped,
text is not; an undefined variable is an error (StrictUndefined). The HTML templates get their CSS
inlined once, as they are loaded (`core.inline_css`), so a rendered message needs no inlining.
Templates are found inside the installed package (``paperalerts/templates``, put there by the
wheel's force-include) or, from a checkout, at the repository root.

Pure: no I/O beyond reading the templates once.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Final

from jinja2 import BaseLoader, Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from paperalerts.core.digest import Digest, DigestItem, Segment, clip
from paperalerts.core.inline_css import InliningLoader, style_of
from paperalerts.core.paper_links import http_url
from paperalerts.core.schedule import zone
from paperalerts.errors import ConfigError

SUBJECT_MAX: Final = 150
# Gmail clips an HTML body past 102 KB ("[Message clipped]"), hiding the footer and its
# unsubscribe link. Keep a margin for the MIME encoding and the headers around it.
HTML_BUDGET_BYTES: Final = 95_000
EMAILS: Final = ("digest", "confirm", "ops_alert", "already")
# A digest gets a table of contents (jump links to its rule groups) from this many groups and
# papers on: below that, the whole email fits on a screen or two.
CONTENTS_MIN_GROUPS: Final = 2
CONTENTS_MIN_PAPERS: Final = 5
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_SPACE_RE: Final = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Rendered:
    """One rendered email: a one-line `subject`, the `text` part and the `html` part."""

    subject: str
    text: str
    html: str


@dataclass(frozen=True, slots=True)
class Footer:
    """What every email ends with: why the recipient gets it, links to manage and to unsubscribe
    (None where they do not apply, e.g. a sign-up confirmation) and the sender's postal address."""

    reason: str
    postal_address: str
    manage_url: str | None = None
    unsubscribe_url: str | None = None


def template_dir() -> Path:
    """The folder holding ``email/``: inside the installed package, else the checkout's root."""
    here = Path(__file__).resolve().parent.parent  # the paperalerts package
    for candidate in (here / "templates", here.parent.parent / "templates"):
        if (candidate / "email").is_dir():
            return candidate
    raise ConfigError(f"email templates not found in {here / 'templates'} nor the checkout root")


def clean_subject(subject: str) -> str:
    """One line: control characters (Unicode Cc, Cs) and line/paragraph separators (Zl, Zp)
    become spaces, runs of whitespace collapse, and the result is cut at `SUBJECT_MAX`."""
    return clip(_SPACE_RE.sub(" ", _CONTROL_RE.sub(" ", subject)).strip(), SUBJECT_MAX)


def marked_html(segments: Iterable[Segment]) -> Markup:
    """HTML for highlight segments: matched runs in <mark>, every run escaped (the ``marked``
    filter of the email and the web templates)."""
    return Markup(
        "".join(
            f"<mark>{escape(s.text)}</mark>" if s.highlight else escape(s.text) for s in segments
        )
    )


def _starred(segments: Iterable[Segment]) -> str:
    """Plain text for highlight segments: matched runs as *run*."""
    return "".join(f"*{s.text}*" if s.highlight else s.text for s in segments)


def _day(d: date) -> str:
    return f"{d.day} {d:%b %Y}"


def _stats(item: DigestItem) -> str:
    """``▲ 63 upvotes · 3 comments · 11 Mar 2024``, omitting what the source did not report."""
    parts = []
    if item.upvotes is not None:
        parts.append(f"▲ {item.upvotes} upvote{'' if item.upvotes == 1 else 's'}")
    if item.comments is not None:
        parts.append(f"{item.comments} comment{'' if item.comments == 1 else 's'}")
    if item.date is not None:
        parts.append(_day(item.date))
    return " · ".join(parts)


@functools.lru_cache(maxsize=8)
def environment(directory: str | None = None, *, inline_css: bool = True) -> Environment:
    """The Jinja environment over `directory` (default `template_dir()`), built once per folder.
    With `inline_css` (the default) its HTML templates carry their CSS inlined; without, they
    keep the ``<style>`` block as written (what the inlining is checked against)."""
    files = FileSystemLoader(directory or str(template_dir()))
    loader: BaseLoader = InliningLoader(files) if inline_css else files
    env = Environment(
        loader=loader,
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,  # templates ship with the code; no stat() per render
        cache_size=64,
    )
    # http_url: scraped links are rendered only through it (only http(s), else nothing).
    env.filters.update(marked=marked_html, starred=_starred, stats=_stats, day=_day,
                       http_url=http_url)
    if isinstance(loader, InliningLoader):
        # str.replace: Markup.replace would escape the replacement
        styled = f'<mark style="{escape(style_of(loader.css(env), "mark"))}">'
        env.filters["marked"] = lambda segments: Markup(
            str(marked_html(segments)).replace("<mark>", styled)
        )
    return env


def render_email(
    name: str, context: Mapping[str, Any], *, directory: str | None = None
) -> Rendered:
    """Render ``email/<name>/`` with `context`: subject made one line, text as written, HTML
    autoescaped with its CSS inlined (by the templates: see `environment`). Raises jinja2
    errors for a missing template or variable."""
    env = environment(directory)
    ctx = dict(context)
    subject = env.get_template(f"email/{name}/subject.txt").render(ctx)
    text = env.get_template(f"email/{name}/body.txt").render(ctx)
    html = env.get_template(f"email/{name}/body.html").render(ctx)
    return Rendered(clean_subject(subject), text, html)


def contents(digest: Digest) -> list[dict[str, Any]]:
    """The table of contents of a larger digest: per rule group its anchor, name and number of
    papers shown; empty for a small one (see `CONTENTS_MIN_GROUPS`, `CONTENTS_MIN_PAPERS`)."""
    if len(digest.groups) < CONTENTS_MIN_GROUPS or digest.shown_papers < CONTENTS_MIN_PAPERS:
        return []
    return [
        {"anchor": f"rule-{g.rule_id}", "name": g.rule_name, "count": len(g.items)}
        for g in digest.groups
    ]


def digest_context(digest: Digest, footer: Footer, *, preview: bool = False) -> dict[str, Any]:
    """The digest (and instant alert) templates' context. A `preview` (sent on request, not on
    schedule) says so at the top and in its heading."""
    local = digest.now.astimezone(zone(digest.subscriber.timezone)).date()
    freq = digest.subscriber.frequency
    if digest.kind == "alert":
        period_title, heading = _day(local), "New papers matching your rules"
    elif freq == "weekly":
        monday = local - timedelta(days=local.weekday())
        period_title = f"Week of {_day(monday)}"
        heading = f"Your weekly papers, week of {_day(monday)}"
    else:
        period_title = f"{local:%a} {_day(local)}"
        heading = f"Your daily papers, {local:%A} {_day(local)}"
    first = next((g.items[0] for g in digest.groups if g.items), None)
    return {
        "digest": digest,
        "footer": footer,
        "preview": preview,
        "contents": contents(digest),
        "heading": f"Preview: {heading[0].lower()}{heading[1:]}" if preview else heading,
        "period_title": period_title,
        "rule_names": list(dict.fromkeys(g.rule_name for g in digest.groups)),
        "first_title": first.title_text if first else "",
    }


def render_digest(
    digest: Digest, footer: Footer, *, directory: str | None = None, preview: bool = False
) -> Rendered:
    """Render a digest or alert whose HTML stays under `HTML_BUDGET_BYTES` (UTF-8): when it would
    not, the last papers move to "and N more" (linking to the online view) until it fits.
    `preview`: marked as a preview (see `digest_context`)."""
    rendered = render_email(
        "digest", digest_context(digest, footer, preview=preview), directory=directory
    )
    size = len(rendered.html.encode())
    shown = digest.shown_papers
    while size > HTML_BUDGET_BYTES and shown > 0:
        per_item = max(size // max(shown, 1), 1)
        shown = max(min(shown - 1, shown - (size - HTML_BUDGET_BYTES) // per_item - 1), 0)
        smaller = digest.trimmed(shown)
        rendered = render_email(
            "digest", digest_context(smaller, footer, preview=preview), directory=directory
        )
        size = len(rendered.html.encode())
    return rendered


def render_confirm(
    *,
    email: str,
    confirm_url: str,
    expires_hours: int,
    footer: Footer,
    directory: str | None = None,
) -> Rendered:
    """The double opt-in email: a confirm link valid for `expires_hours` hours."""
    context = {
        "email": email,
        "confirm_url": confirm_url,
        "expires_hours": expires_hours,
        "footer": footer,
    }
    return render_email("confirm", context, directory=directory)


def render_already(
    *,
    email: str,
    manage_url: str,
    follow_url: str,
    topics: Iterable[str],
    footer: Footer,
    directory: str | None = None,
) -> Rendered:
    """The answer to a sign-up with an address that is subscribed already: a link to the
    preferences page, with the topics ticked at sign-up (if any) ready to follow."""
    context = {"email": email, "manage_url": manage_url, "follow_url": follow_url,
               "topics": list(topics), "footer": footer}
    return render_email("already", context, directory=directory)

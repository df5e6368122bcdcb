"""CSS inlined into the email templates once, when they are loaded, instead of into every message.

Mail clients ignore or strip ``<style>`` blocks, so every element carries its own ``style``
attribute. Inlining each rendered message (css-inline over ~30 KB of HTML) cost as much as
rendering it; here the ``<style>`` of ``email/_base/body.html`` is applied once to the start tags
written in the HTML templates' source, and the rendered message needs nothing more.

That is exact only for CSS whose every selector looks at the element alone (``tag``, ``.class``,
``tag.class``, ``*``): then an element's style depends on its tag, classes and own ``style`` and
nothing around it, so the declarations css-inline itself gives an element with that tag and
those attributes (asked once per distinct tag) are the ones it would give it in any message.
`InliningLoader` refuses any other CSS (a combinator, a pseudo-class, an at-rule) and any
element whose class or style attribute is computed by the template, with `ConfigError`.
Elements the templates do not write come only from filters; the one that writes markup,
``marked`` (``<mark>``), uses `style_of` for its tag.

Pure: the templates are read through the wrapped loader; nothing else is touched.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Callable
from typing import Final

import css_inline
from jinja2 import BaseLoader, Environment

from paperalerts.errors import ConfigError

BASE: Final = "email/_base/body.html"
_STYLE_BLOCK_RE: Final = re.compile(r"<style\b[^>]*>(.*?)</style>", re.S | re.I)
_CSS_COMMENT_RE: Final = re.compile(r"/\*.*?\*/", re.S)
_SIMPLE_SELECTOR_RE: Final = re.compile(r"^(?:\*|[a-zA-Z][a-zA-Z0-9]*)?(?:\.[A-Za-z_][\w-]*)*$")
# A start tag of the template source: attribute values may hold Jinja expressions (no "<>").
_TAG_RE: Final = re.compile(
    r"<(?P<tag>[a-zA-Z][a-zA-Z0-9]*)"
    r"(?P<attrs>(?:\s+[^\s\"'<>/=]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'<>=`]+))?)*)"
    r"\s*(?P<end>/?)>"
)
_ATTR_RE: Final = re.compile(
    r"\s+(?P<name>[^\s\"'<>/=]+)(?:\s*=\s*(?:\"(?P<dq>[^\"]*)\"|'(?P<sq>[^']*)'|(?P<bare>[^\s\"'<>=`]+)))?"
)
_PROBE_STYLE_RE: Final = re.compile(r"<[a-zA-Z][a-zA-Z0-9]*\b[^>]*\bdata-probe[^>]*>")
_STYLE_ATTR_RE: Final = re.compile(r'\sstyle="([^"]*)"')
# Where the HTML parser would drop a lone element, the probe is written inside its parents.
_CONTEXT: Final = {
    "table": ("", ""),
    "caption": ("<table>", "</table>"),
    "thead": ("<table>", "</table>"),
    "tbody": ("<table>", "</table>"),
    "tfoot": ("<table>", "</table>"),
    "tr": ("<table><tbody>", "</tbody></table>"),
    "td": ("<table><tbody><tr>", "</tr></tbody></table>"),
    "th": ("<table><tbody><tr>", "</tr></tbody></table>"),
    "li": ("<ul>", "</ul>"),
}


def css_of(source: str) -> str:
    """The CSS of every ``<style>`` block of a template's source, checked: `ConfigError` for
    an at-rule or a selector that looks beyond the element (see the module docstring)."""
    css = _CSS_COMMENT_RE.sub("", "\n".join(_STYLE_BLOCK_RE.findall(source)))
    if "@" in css:
        raise ConfigError(f"email CSS: at-rules cannot be inlined: {css.strip()[:80]!r}")
    for rule in css.split("}"):
        selectors = rule.split("{", 1)[0]
        if not rule.strip():
            continue
        for sel in selectors.split(","):
            if not _SIMPLE_SELECTOR_RE.match(sel.strip()) or not sel.strip():
                raise ConfigError(
                    f"email CSS: selector {sel.strip()!r} depends on more than the element "
                    "(only tag, .class, tag.class and * can be inlined into the templates)"
                )
    return css


@functools.lru_cache(maxsize=1024)
def style_of(css: str, tag: str, classes: str = "", style: str = "") -> str:
    """The ``style`` attribute css-inline gives a `tag` element with `classes` and its own
    `style` under `css` ("" when nothing applies), asked of css-inline on a one-element page."""
    tag = tag.lower()
    attrs = (f' class="{html.escape(classes)}"' if classes else "") + (
        f' style="{html.escape(style)}"' if style else ""
    )
    if tag in ("html", "head", "body"):
        parts = {"html": "", "head": "", "body": ""}
        parts[tag] = f" data-probe{attrs}"
        page = (
            f"<html{parts['html']}><head{parts['head']}><style>{css}</style></head>"
            f"<body{parts['body']}></body></html>"
        )
    else:
        before, after = _CONTEXT.get(tag, ("", ""))
        page = (
            f"<html><head><style>{css}</style></head><body>{before}<{tag} data-probe{attrs}>"
            f"</{tag}>{after}</body></html>"
        )
    probe = _PROBE_STYLE_RE.search(css_inline.inline(page))
    if probe is None:
        raise ConfigError(f"email CSS: cannot work out the style of a <{tag}> element")
    found = _STYLE_ATTR_RE.search(probe.group(0))
    return html.unescape(found.group(1)) if found else ""


def inline_source(source: str, css: str, name: str = "template") -> str:
    """`source` (Jinja HTML) without its ``<style>`` blocks and with every start tag carrying
    the style `css` gives it. `ConfigError` (naming `name`) for a class or style attribute that
    holds template code, where the style would depend on the data."""
    source = _STYLE_BLOCK_RE.sub("", source)

    def one(tag: re.Match[str]) -> str:
        attrs: dict[str, str] = {}
        for a in _ATTR_RE.finditer(tag.group("attrs")):
            attrs[a.group("name").lower()] = html.unescape(
                a.group("dq") or a.group("sq") or a.group("bare") or ""
            )
        classes, own = attrs.get("class", ""), attrs.get("style", "")
        if any(mark in classes + own for mark in ("{{", "{%", "{#")):
            raise ConfigError(
                f"{name}: <{tag.group('tag')}> has a class or style computed by the template; "
                "its CSS cannot be inlined once"
            )
        style = style_of(css, tag.group("tag"), " ".join(classes.split()), own)
        if not style:
            return tag.group(0)
        kept = _ATTR_RE.sub(
            lambda a: "" if a.group("name").lower() == "style" else a.group(0), tag.group("attrs")
        )
        end = " /" if tag.group("end") else ""
        return f'<{tag.group("tag")}{kept} style="{html.escape(style)}"{end}>'

    return _TAG_RE.sub(one, source)


class InliningLoader(BaseLoader):
    """A loader whose ``.html`` templates come with the CSS of `BASE` inlined (see the module
    docstring); other templates pass through unchanged."""

    def __init__(self, inner: BaseLoader) -> None:
        self.inner = inner
        self._css: str | None = None

    def css(self, environment: Environment) -> str:
        """The base template's CSS, read and checked once."""
        if self._css is None:
            self._css = css_of(self.inner.get_source(environment, BASE)[0])
        return self._css

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        source, filename, uptodate = self.inner.get_source(environment, template)
        if template.endswith(".html"):
            if template != BASE and _STYLE_BLOCK_RE.search(source):
                raise ConfigError(f"{template}: email CSS belongs in {BASE}, the one <style>")
            source = inline_source(source, self.css(environment), template)
        return source, filename, uptodate

"""Render once, fill many: CSS inlined into the templates once gives what inlining every message
gave, and refuses CSS it could not inline exactly."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import css_inline
import lxml.html
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2 import DictLoader, Environment

from conftest import fixture_file
from mail_fixtures import (
    HF_DAY_2024_03_12,
    HF_DAY_2026_05_08,
    NOW,
    hf_papers,
    match,
    sample_digest,
    sample_footer,
)
from paperalerts.core.digest import Recommended, SubscriberInfo, build_digest, paper_item
from paperalerts.core.feedback import feedback_links
from paperalerts.core.inline_css import InliningLoader, css_of, inline_source
from paperalerts.core.render import digest_context, environment
from paperalerts.errors import ConfigError

PER_MESSAGE = css_inline.CSSInliner(keep_style_tags=False, load_remote_stylesheets=False)


def dom(html: str) -> list[tuple[Any, ...]]:
    """The page as its elements in order: tag, attributes (style declarations split), text."""
    out = []
    for el in lxml.html.document_fromstring(css_inline.inline(html)).iter():
        attrs = dict(el.attrib)
        if "style" in attrs:
            attrs["style"] = [d.strip() for d in attrs["style"].split(";") if d.strip()]
        out.append((el.tag, sorted(attrs.items()), el.text, el.tail))
    return out


def both(name: str, ctx: dict[str, Any]) -> tuple[str, str]:
    """(today's way: the plain template inlined per message, the template inlined once)."""
    plain = environment(inline_css=False).get_template(f"email/{name}/body.html").render(ctx)
    once = environment().get_template(f"email/{name}/body.html").render(ctx)
    return PER_MESSAGE.inline(plain), once


def decorated(digest: Any) -> Any:
    """`digest` with feedback links on every paper and two recommendations (every block of the
    digest template is then rendered)."""
    extra = hf_papers(fixture_file(HF_DAY_2024_03_12))[:2]
    recs = tuple(Recommended(paper_item(p), ("diffusion", "video"), 0.5) for p in extra)
    ids = [i.paper_id for g in digest.groups for i in g.items] + [p.id for p in extra]
    links = feedback_links("https://alerts.example.org", "s" * 32, 1, 0, ids, "d1", now=NOW)
    return replace(digest, feedback=links, recommendations=recs)


@pytest.mark.parametrize("frequency", ["daily", "weekly", "instant"])
@pytest.mark.parametrize("preview", [False, True])
def test_digest_inlined_once_is_the_page_inlined_per_message(frequency: str, preview: bool) -> None:
    """Every digest variant (kinds, preview, contents, "and N more", feedback links,
    recommendations, highlights) parses to the same elements, attributes and styles as the
    page css-inline produced for each message before."""
    digest = decorated(
        sample_digest(fixture_file(HF_DAY_2026_05_08), frequency=frequency, max_items=6)
    )
    per_message, once = both("digest", digest_context(digest, sample_footer(), preview=preview))
    assert "<style" not in once and "<mark style=" in once
    assert dom(once) == dom(per_message)


def test_every_email_template_inlined_once_matches() -> None:
    """The confirm, already-subscribed and ops-alert emails come out as before too."""
    footer = sample_footer()
    contexts = {
        "confirm": {"email": "a@example.org", "confirm_url": "https://x.example/c?t=1&u=2",
                    "expires_hours": 48, "footer": footer},
        "already": {"email": "a@example.org", "manage_url": "https://x.example/m",
                    "follow_url": "https://x.example/f", "topics": ["NLP"], "footer": footer},
    }
    for name, ctx in contexts.items():
        per_message, once = both(name, ctx)
        assert dom(once) == dom(per_message), name


@settings(max_examples=40, deadline=None)
@given(
    title=st.text(min_size=1, max_size=60),
    author=st.text(min_size=1, max_size=30),
    rule=st.text(min_size=1, max_size=30),
)
def test_hostile_text_inlined_once_matches(title: str, author: str, rule: str) -> None:
    """Whatever a scraped title, author or rule name holds (markup, quotes, entities), the page
    inlined once parses as the page inlined per message."""
    p = hf_papers(fixture_file(HF_DAY_2024_03_12))[0]
    evil = replace(p, title=f"{title} model", authors=(author,))
    d = build_digest(SubscriberInfo("a@example.org"), [match(evil, 1, rule, ["model"], NOW)],
                     [], now=NOW, online_url="https://alerts.example.org/v/T")
    per_message, once = both("digest", digest_context(d, sample_footer()))
    assert dom(once) == dom(per_message)


@pytest.mark.parametrize(
    "css", ["div p{color:red}", ".a > .b{color:red}", "a:hover{color:red}",
            "@media (max-width:600px){.w{padding:0}}", "p + p{margin:0}", "[href]{color:red}"],
)
def test_css_that_depends_on_more_than_the_element_is_refused(css: str) -> None:
    """A selector whose match depends on the element's surroundings or state (or an at-rule)
    cannot be inlined once per template: refused with a message naming it."""
    with pytest.raises(ConfigError, match="email CSS"):
        css_of(f"<style>{css}</style>")


def test_computed_class_is_refused() -> None:
    """An element whose class is computed by the template would get its style from the data:
    refused at load, naming the template."""
    with pytest.raises(ConfigError, match=r"x\.html: <p> has a class or style computed"):
        inline_source('<p class="{{ kind }}">x</p>', ".a{color:red}", "x.html")


def test_a_second_style_block_is_refused() -> None:
    """CSS lives in the base template only; another template's <style> is refused, not lost."""
    loader = InliningLoader(DictLoader({
        "email/_base/body.html": "<style>p{color:red}</style>{% block b %}{% endblock %}",
        "email/x/body.html": "<style>.y{color:blue}</style><p>x</p>",
    }))


    with pytest.raises(ConfigError, match=r"email/x/body\.html: email CSS belongs in"):
        Environment(loader=loader).get_template("email/x/body.html")

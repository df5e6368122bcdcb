"""Rendering emails from templates: golden output, escaping, one-line subjects, size budget.

Golden files: tests/golden/digest.{subject.txt,body.txt,body.html} hold the rendering of a fixed
digest (real papers from the 2026-05-08 HF fixture, fixed `now`). After an intended change to the
templates or the digest, regenerate them with ``UPDATE_GOLDEN=1 .venv/bin/pytest
tests/test_render.py`` and review the diff.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import jinja2
import pytest

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
from paperalerts.core.digest import SubscriberInfo, build_digest
from paperalerts.core.render import (
    EMAILS,
    HTML_BUDGET_BYTES,
    SUBJECT_MAX,
    Footer,
    clean_subject,
    environment,
    render_already,
    render_confirm,
    render_digest,
    render_email,
    template_dir,
)

GOLDEN = Path(__file__).parent / "golden"
GOLDEN_NOW = datetime(2026, 5, 8, 8, 0, tzinfo=UTC)


def golden_digest() -> object:
    return sample_digest(fixture_file(HF_DAY_2026_05_08), now=GOLDEN_NOW, max_items=8)


@pytest.mark.parametrize("part", ["subject", "text", "html"])
def test_digest_matches_golden(part: str) -> None:
    """The fixed digest renders byte-for-byte as the reviewed golden file."""
    rendered = render_digest(golden_digest(), sample_footer())  # type: ignore[arg-type]
    value = getattr(rendered, part)
    path = (
        GOLDEN
        / f"digest.{ {'subject': 'subject.txt', 'text': 'body.txt', 'html': 'body.html'}[part] }"
    )
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(value, encoding="utf-8")
    assert value == path.read_text(encoding="utf-8")


def test_digest_content() -> None:
    """The digest shows each paper's linked title, authors, org, counts, why, snippet, links,
    the "see the other N papers online" link, the freshness line and the footer, in both parts."""
    d = golden_digest()
    r = render_digest(d, sample_footer())  # type: ignore[arg-type]
    assert r.subject == "Fri 8 May 2026: 24 new papers for Diffusion, Language models"
    for part in (r.text, r.html):
        assert "Continuous Latent" in part  # 2605.06548, matched by both rules
        assert "ByteDance Seed" in part and "68 upvotes" in part and "6 comments" in part
        assert "the other 16 papers online" in part
        assert "https://alerts.example.org/v/VIEWTOKEN" in part
        assert "HF trending: failing since 08:00 CEST; what you missed will follow" in part
        assert "https://alerts.example.org/u/UNSUBTOKEN" in part
        assert "https://alerts.example.org/m/MANAGETOKEN" in part
        assert "Paper Alerts, 1 Example Street, 10115 Berlin" in part
    assert '<a class="t" href="https://huggingface.co/papers/2605.06548"' in r.html
    assert "<mark" in r.html and "*Diffusion*" in r.text


def test_css_is_inlined_and_no_images() -> None:
    """The HTML carries its styles inline (no <style> block left) and needs no images."""
    r = render_digest(golden_digest(), sample_footer())  # type: ignore[arg-type]
    assert "<style" not in r.html
    assert re.search(r'<mark style="[^"]*background', r.html)
    assert "<img" not in r.html


def test_scraped_html_is_escaped() -> None:
    """A title, author and rule name with markup arrive escaped in HTML, verbatim in text."""
    p = hf_papers(fixture_file(HF_DAY_2024_03_12))[0]
    evil = replace(p, title="<script>alert(1)</script> Model", authors=("<b>Eve</b>",))
    d = build_digest(
        SubscriberInfo("a@example.org"),
        [match(evil, 1, "<img src=x onerror=alert(1)>", ["model"], NOW)],
        [],
        now=NOW,
        online_url="https://alerts.example.org/v/T",
    )
    r = render_digest(d, sample_footer())  # type: ignore[arg-type]
    assert "<script>" not in r.html and "<b>Eve" not in r.html and "<img" not in r.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.html
    assert "<script>alert(1)</script> *Model*" in r.text


def test_subject_is_one_capped_line() -> None:
    """Line breaks and control characters in a title never reach the subject; it is capped."""
    p = hf_papers(fixture_file(HF_DAY_2024_03_12))[0]
    evil = replace(p, title="Line one\r\nBcc: x@example.org\x00\u2028" + " long" * 100)
    d = build_digest(
        SubscriberInfo("a@example.org", frequency="instant"),
        [match(evil, 1, "r", ["line"], NOW)],
        [],
        now=NOW,
        online_url="https://x.example/v",
    )
    subject = render_digest(d, sample_footer()).subject  # type: ignore[arg-type]
    assert subject.startswith("New paper for r: Line one Bcc: x@example.org long long")
    assert len(subject) <= SUBJECT_MAX and subject.endswith("…")
    assert not re.search(r"[\x00-\x1f\x7f\u2028\u2029]", subject)
    assert clean_subject(" a\t\tb\n") == "a b"


def test_alert_and_weekly_wording() -> None:
    """Instant alerts and weekly digests word their subject and heading by kind."""
    fixture = fixture_file(HF_DAY_2024_03_12)
    alert = render_digest(sample_digest(fixture, frequency="instant"), sample_footer())  # type: ignore[arg-type]
    assert alert.subject == "7 new papers for Diffusion, Language models"
    assert "New papers matching your rules" in alert.text
    weekly = render_digest(sample_digest(fixture, frequency="weekly"), sample_footer())  # type: ignore[arg-type]
    assert weekly.subject.startswith("Week of 11 Mar 2024: 7 new papers")
    assert "Your weekly papers, week of 11 Mar 2024" in weekly.html


def test_fifty_long_papers_stay_under_gmail_clip() -> None:
    """50 papers with very long titles, names and abstracts still give HTML under the budget
    (Gmail clips at 102 KB), moving the overflow to "and N more" and keeping the footer."""
    base = hf_papers(fixture_file(HF_DAY_2026_05_08))
    longest = max(base, key=lambda p: len(p.abstract))
    papers = [
        replace(
            base[n % len(base)],
            id=f"2605.{90000 + n}",
            title=base[n % len(base)].title + " with a very long subtitle" * 20,
            authors=tuple(a + " von Long-Surname-Family" for a in longest.authors) * 3,
            organization="The Extremely Long Name of a Research Organization" * 4,
            abstract=(longest.abstract + " ") * 3,
        )
        for n in range(50)
    ]
    items = [
        match(p, n % 7, f"Rule {n % 7} " + "x" * 150, ["model", "the"], NOW)
        for n, p in enumerate(papers)
    ]
    d = build_digest(
        SubscriberInfo("a@example.org"),
        items,
        [],
        now=NOW,
        online_url="https://alerts.example.org/v/T",
    )
    r = render_digest(d, sample_footer())  # type: ignore[arg-type]
    size = len(r.html.encode())
    assert size <= HTML_BUDGET_BYTES < 102 * 1024
    shown = r.html.count('<a class="t"')
    assert 10 < shown < 50
    assert f"other {50 - shown} papers online" in r.html
    assert "https://alerts.example.org/u/UNSUBTOKEN" in r.html


def test_confirm_email() -> None:
    """The double opt-in email has the confirm link and the expiry, and no unsubscribe link."""
    footer = Footer("Someone asked to send paper alerts to this address.", "1 Example Street")
    r = render_confirm(
        email="new@example.org",
        confirm_url="https://alerts.example.org/c/TOK",
        expires_hours=72,
        footer=footer,
    )
    assert r.subject == "Confirm your paper alerts subscription"
    for part in (r.text, r.html):
        assert "https://alerts.example.org/c/TOK" in part
        assert "expires in 72 hours" in part and "new@example.org" in part
        assert "Unsubscribe" not in part and "1 Example Street" in part


def test_already_subscribed_email() -> None:
    """The answer to signing up again links to the preferences, with the ticked topics' names
    and a link that ticks them; with no topic it is the plain manage link. No confirm link."""
    footer = Footer("this address was entered in the sign-up form", "1 Example Street",
                    manage_url="https://a.example.org/manage/T")
    r = render_already(email="known@example.org", manage_url="https://a.example.org/manage/T",
                       follow_url="https://a.example.org/manage/T?follow=3,5",
                       topics=["LLM agents", "Diffusion <models>"], footer=footer)
    assert r.subject == "You are already subscribed to paper alerts"
    assert "LLM agents, Diffusion <models>" in r.text
    assert "Diffusion &lt;models&gt;" in r.html and "<models>" not in r.html
    for part in (r.text, r.html):
        assert "https://a.example.org/manage/T?follow=3,5" in part
        assert "/confirm/" not in part and "known@example.org" in part
    plain = render_already(email="known@example.org", manage_url="https://a.example.org/manage/T",
                           follow_url="https://a.example.org/manage/T", topics=[], footer=footer)
    assert "follow=" not in plain.text and "https://a.example.org/manage/T" in plain.text


def test_every_email_template_is_rendered_here() -> None:
    """Each folder under templates/email (but _base) is a known email, with all three parts."""
    folders = sorted(
        p.name for p in (template_dir() / "email").iterdir() if p.is_dir() and p.name != "_base"
    )
    assert folders == sorted(EMAILS) == ["already", "confirm", "digest", "ops_alert"]
    for name in folders:
        for part in ("subject.txt", "body.txt", "body.html"):
            assert (template_dir() / "email" / name / part).is_file()


def test_missing_variable_is_an_error() -> None:
    """StrictUndefined: a context without what a template uses fails instead of rendering blanks."""
    with pytest.raises(jinja2.UndefinedError):
        render_email("confirm", {"email": "a@example.org"})


def test_environment_is_built_once_from_the_checkout() -> None:
    """One environment per template folder, reused; from a checkout it is the repo's templates/."""
    assert environment() is environment()
    assert template_dir() == Path(__file__).resolve().parent.parent / "templates"
    assert environment().autoescape("x.html") and not environment().autoescape("x.txt")

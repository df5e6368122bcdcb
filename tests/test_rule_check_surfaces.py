"""One rule check on every surface (issue 17, item 3): "diffusion or transformer" (the word "or"
between two words, which would be saved as ``diffusion AND or AND transformer``) is refused with
the fix wherever a rule is entered: the JSON API's validator (with `warnings` in its schema) and
its rule creation, the CSV import report, and (in Chromium) the sign-up, manage and admin
editor pages. The CLI's `rules check` is pinned in test_cli_operator_experience.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.core.subscribers import subscriber_links
from paperalerts.edges.db import models as m
from paperalerts.edges.mailer import SMTPMailer
from paperalerts.faces.web import create_app
from paperalerts.faces.web.csvio import run_import
from smtp_sink import SMTPSink
from web_support import (
    SECRET,
    LiveServer,
    WebEnv,
    add_subscriber,
    admin_login,
    api_token,
    launch_chromium,
    make_admin,
    settings_for,
)

TRAP = "diffusion or transformer"
FIX = "diffusion OR transformer"
SAID = "'or' would be searched as a word; write OR"


def rule_count(factory: sessionmaker[Session]) -> int:
    with factory() as s:
        return int(s.scalar(select(func.count()).select_from(m.Rule)) or 0)


def test_api_validator_refuses_a_lowercase_or_with_warnings_in_its_schema(
    db: sessionmaker[Session],
) -> None:
    """POST /api/v1/rules/validate answers ok=false with the position, the fix as a hint and
    the finding under `warnings` (declared in the OpenAPI schema); creating such a rule through
    the API is a 422 and stores nothing; a quoted "or" or an upper-case OR passes."""
    env = WebEnv.start(db)
    auth = api_token(env)
    c = env.client
    got = c.post("/api/v1/rules/validate", headers=auth, json={"query": TRAP}).json()
    assert got["ok"] is False and got["normalized"] is None
    assert got["position"] == 10 and SAID in got["error"]
    assert got["hint"] == f"did you mean: {FIX}"
    assert got["warnings"] == [{"message": got["error"], "position": 10, "suggestion": FIX}]
    for fine in (FIX, 'diffusion "or" transformer'):
        ok = c.post("/api/v1/rules/validate", headers=auth, json={"query": fine}).json()
        assert ok["ok"] is True and ok["warnings"] == []
    schema = c.get("/api/v1/openapi.json").json()["components"]["schemas"]
    assert "warnings" in schema["RuleCheck"]["properties"]
    assert set(schema["RuleWarningOut"]["properties"]) == {"message", "position", "suggestion"}
    sid = add_subscriber(db, "api@example.org")
    bad = c.post(f"/api/v1/subscribers/{sid}/rules", headers=auth, json={"query": TRAP})
    assert bad.status_code == 422 and SAID in bad.text
    assert rule_count(db) == 0
    live = c.post("/validate", json={"query": TRAP}).json()  # what the pages' script calls
    assert live["ok"] is False and live["hint"] == f"did you mean: {FIX}"


def test_csv_import_report_names_the_row_with_the_lowercase_operator(
    db: sessionmaker[Session],
) -> None:
    """The admin's CSV import (the code `subscribers import` shares) reports the row whose
    rule has a lowercase "or" with the fix, and imports only the other row."""
    text = f'email,rules\nann@example.org,"{TRAP}"\nbob@example.org,"{FIX}"\n'
    summary = run_import(db, None, text, datetime.now(UTC), "admin:test", dry_run=False)
    assert summary.created == 1
    ((problem),) = summary.problems
    assert problem.line == 2 and SAID in problem.message
    assert f"did you mean: {FIX}" in problem.message
    with db() as s:
        assert list(s.scalars(select(m.Rule.query))) == [FIX]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch_chromium() as b:
        yield b


@pytest.fixture
def server(factory: sessionmaker[Session], sink: SMTPSink) -> Iterator[LiveServer]:
    def app(url: str) -> Any:
        return create_app(settings_for(url), mailer=SMTPMailer(sink.url, timeout=10),
                          session_factory=factory)  # fmt: skip

    with LiveServer(app) as live:
        yield live


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    p = context.new_page()
    yield p
    context.close()


def _live_check_says_the_fix(page: Any, check: str) -> None:
    page.wait_for_selector(f"{check}.bad")
    text = page.inner_text(check)
    assert SAID in text and f"did you mean: {FIX}" in text and "valid" not in text


@pytest.mark.browser
@pytest.mark.slow
def test_pages_refuse_a_lowercase_or_live_and_on_submit(
    page: Any, server: LiveServer, factory: sessionmaker[Session], sink: SMTPSink
) -> None:
    """Sign-up, the manage page and the admin rule editor: the live check shows the problem
    and the fix (never "✓ valid"), and submitting anyway is refused with it: nothing saved,
    no confirmation email, the admin's rule unchanged."""
    page.goto(server.url + "/signup")
    page.fill("#email", "new@example.org")
    page.fill("#rules", TRAP)
    _live_check_says_the_fix(page, "#rules-check")
    page.click("#signup button[type=submit]")
    page.wait_for_selector(f"text={SAID}")
    with factory() as s:
        assert s.scalars(select(m.Subscriber).where(m.Subscriber.email == "new@example.org")
                         ).first() is None  # fmt: skip
    assert sink.messages == []

    sid = add_subscriber(factory, "ann@example.org", rules=("graph",))
    manage = subscriber_links(server.url, SECRET, sid, 1, now=datetime.now(UTC)).manage
    page.goto(manage)
    page.fill("#new-query", TRAP)
    _live_check_says_the_fix(page, "#new-check")
    page.click("#add-rule button[type=submit]")
    page.wait_for_selector("[data-rule-error]")
    assert SAID in page.inner_text("#add-rule")
    assert rule_count(factory) == 1

    make_admin(factory)
    admin_login(page, server.url)
    with factory() as s:
        rule_id = s.scalars(select(m.Rule.id)).one()
    page.goto(f"{server.url}/admin/rules/{rule_id}")
    page.fill("#query", TRAP)
    _live_check_says_the_fix(page, "#query-check")
    page.click("#rule-form button[type=submit] >> nth=0")
    page.wait_for_selector(f"text={SAID}")
    with factory() as s:
        assert s.get_one(m.Rule, rule_id).query == "graph"

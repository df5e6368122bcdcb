"""The CLI does what the admin can (issue 19): rules edited, disabled, enabled and removed;
topics; API tokens; `sources set`; a confirmation before `subscribers remove`; and every change
audited like the admin's. Each test runs the real console entry (`python -m paperalerts`)
against a real SQLite database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text


def cli(db: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERALERTS_")}
    env.update(PAPERALERTS_DATABASE_URL=db, PAPERALERTS_SECRET_KEY="k" * 32)
    return subprocess.run([sys.executable, "-m", "paperalerts", *args], capture_output=True,
                          text=True, env=env, timeout=120, input=stdin)


def ok(db: str, *args: str) -> str:
    r = cli(db, *args)
    assert r.returncode == 0, f"{args}: {r.stdout}{r.stderr}"
    return r.stdout


def audit(db: str) -> list[tuple[Any, ...]]:
    engine = create_engine(db)
    with engine.connect() as c:
        rows = list(c.execute(text("SELECT actor, action, entity, entity_id FROM audit_log "
                                   "ORDER BY id")))
    engine.dispose()
    return [tuple(r) for r in rows]


def _installed(tmp_path: Path) -> str:
    db = f"sqlite:///{tmp_path / 'pa.db'}"
    ok(db, "init", "--no-defaults")
    ok(db, "subscribers", "add", "ann@example.org", "--confirmed")
    return db


def test_rules_edit_disable_enable_remove(tmp_path: Path) -> None:
    """A rule is edited (checked first: a bad one exits 2 and changes nothing), disabled,
    enabled and removed by its id; `rules list` shows each state; each change is audited as
    the CLI's."""
    db = _installed(tmp_path)
    ok(db, "rules", "add", "ann@example.org", "diffusion")
    rid = ok(db, "rules", "list").split("\t")[0]
    assert "updated rule" in ok(db, "rules", "edit", rid, "--query", "graph transformer",
                                "--name", "graphs")
    bad = cli(db, "rules", "edit", rid, "--query", "graph AND (")
    assert bad.returncode == 2 and "invalid rule" in bad.stderr
    assert ok(db, "rules", "list").split("\t")[2:] == ["enabled", "graphs", "graph transformer\n"]
    ok(db, "rules", "disable", rid)
    assert "\tdisabled\t" in ok(db, "rules", "list")
    ok(db, "rules", "enable", rid)
    assert "\tenabled\t" in ok(db, "rules", "list")
    assert "removed rule" in ok(db, "rules", "remove", rid)
    assert ok(db, "rules", "list") == ""
    missing = cli(db, "rules", "remove", rid)
    assert missing.returncode == 1 and f"no rule {rid}" in missing.stderr
    rule_rows = [(a, act) for a, act, e, _ in audit(db) if e == "rule"]
    assert rule_rows == [("cli", "create"), ("cli", "update"), ("cli", "update"),
                         ("cli", "update"), ("cli", "delete")]


def test_topics_add_edit_follow_remove(tmp_path: Path) -> None:
    """Topics are added (rule checked), listed with followers, edited, followed and unfollowed
    for a subscriber (hidden ones too, as the admin can) and removed after a confirmation."""
    db = _installed(tmp_path)
    ok(db, "topics", "add", "Graphs", "graph transformer", "--description", "GNNs")
    assert cli(db, "topics", "add", "Bad", "a AND (").returncode == 2
    assert cli(db, "topics", "add", "Graphs", "x").returncode == 1  # the name is taken
    ok(db, "topics", "edit", "Graphs", "--hidden", "--query", "gnn OR graph")
    assert "ann@example.org follows Graphs" in ok(db, "topics", "follow", "ann@example.org",
                                                  "Graphs")
    assert ok(db, "topics", "list").split("\t")[1:] == [
        "Graphs", "hidden", "enabled", "1 follower", "gnn OR graph\n"]
    assert "follows no topics" in ok(db, "topics", "unfollow", "ann@example.org", "Graphs")
    refused = cli(db, "topics", "remove", "Graphs")  # not a terminal: no silent deletion
    assert refused.returncode == 1 and "--yes" in refused.stderr
    ok(db, "topics", "remove", "Graphs", "--yes")
    assert ok(db, "topics", "list") == ""
    assert [act for _, act, e, _ in audit(db) if e in ("topic", "subscriber_topics")] == [
        "create", "update", "update", "update", "delete"]


def test_tokens_create_list_revoke(tmp_path: Path) -> None:
    """`tokens create` prints the token once (stdout, for scripts) and keeps only its hash; the
    API takes it; `tokens revoke` makes the API refuse it; list shows each state; audited."""
    from fastapi.testclient import TestClient

    from paperalerts.edges.config import Settings
    from paperalerts.faces.web import create_app

    db = _installed(tmp_path)
    token = ok(db, "tokens", "create", "ci-bot").strip()
    assert token.startswith("pa_") and token not in str(audit(db))
    tid, name, state, *_ = ok(db, "tokens", "list").split("\t")
    assert (name, state) == ("ci-bot", "active")
    app = create_app(Settings(database_url=db, secret_key="k" * 32))
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get("/api/v1/subscribers", headers=headers).status_code == 200
        ok(db, "tokens", "revoke", tid)
        assert client.get("/api/v1/subscribers", headers=headers).status_code == 401
    assert ok(db, "tokens", "list").split("\t")[2] == "revoked"
    assert [(a, act, e) for a, act, e, _ in audit(db) if e == "api_token"] == [
        ("cli", "create", "api_token"), ("cli", "revoke", "api_token")]


def test_sources_set_and_every_source_change_is_audited(tmp_path: Path) -> None:
    """`sources set` changes URL, interval and name (only what is given; a bad interval or URL
    is refused with nothing changed); add, set, disable, enable and remove each leave an audit
    row naming the CLI, as the admin's changes do."""
    db = _installed(tmp_path)
    ok(db, "sources", "add", "blog", "feed", "https://example.org/a.xml", "--no-check")
    out = ok(db, "sources", "set", "blog", "--url", "https://example.org/b.xml", "--every", "2h",
             "--name", "lab-blog", "--no-check")
    assert "updated source lab-blog (feed, every 2h) https://example.org/b.xml" in out
    assert cli(db, "sources", "set", "lab-blog", "--every", "soon").returncode == 1
    assert cli(db, "sources", "set", "lab-blog", "--url", "ftp://x").returncode == 1
    listed = ok(db, "sources", "list").splitlines()[1].split("\t")
    assert listed[:3] == ["lab-blog", "feed", "2h"] and listed[8] == "https://example.org/b.xml"
    ok(db, "sources", "disable", "lab-blog")
    ok(db, "sources", "enable", "lab-blog")
    ok(db, "sources", "remove", "lab-blog", "--yes")
    assert [(a, act) for a, act, e, _ in audit(db) if e == "source"] == [
        ("cli", "create"), ("cli", "update"), ("cli", "disable"), ("cli", "enable"),
        ("cli", "delete")]


def test_subscribers_remove_asks_first(tmp_path: Path) -> None:
    """`subscribers remove` asks before deleting someone with their history: "n" keeps them,
    with no terminal it refuses and names --yes, --yes deletes (audited)."""
    db = _installed(tmp_path)
    ok(db, "rules", "add", "ann@example.org", "diffusion")
    refused = cli(db, "subscribers", "remove", "ann@example.org")
    assert refused.returncode == 1 and "--yes" in refused.stderr
    assert "ann@example.org" in ok(db, "subscribers", "list")
    r = subprocess.run(  # a terminal that answers "n"
        ["script", "-qec", f"{sys.executable} -m paperalerts subscribers remove ann@example.org",
         "/dev/null"], input="n\n", capture_output=True, text=True, timeout=60,
        env={**os.environ, "PAPERALERTS_DATABASE_URL": db},
    )
    assert "Remove ann@example.org with 1 rule" in r.stdout and r.returncode != 0
    assert "ann@example.org" in ok(db, "subscribers", "list")
    assert "removed ann@example.org" in ok(db, "subscribers", "remove", "ann@example.org", "--yes")
    assert ok(db, "subscribers", "list") == ""
    assert ("cli", "delete", "subscriber", "1") in audit(db)


def test_messages_count_in_words(tmp_path: Path) -> None:
    """No "1 rules", no "from the last 1 days", no literal MAX_RULES in help."""
    db = _installed(tmp_path)
    ok(db, "rules", "add", "ann@example.org", "diffusion")
    assert ok(db, "subscribers", "list").rstrip().endswith("\t1 rule")
    assert "from the last 1 day match" in ok(db, "rules", "preview", "diffusion", "--days", "1")
    assert "MAX_RULES" not in ok(db, "rules", "add", "--help")


def test_help_lists_each_command_on_unbroken_lines(tmp_path: Path) -> None:
    """`--help` summarises each command in one flowing line (wide terminal): a docstring's line
    breaks no longer cut a summary mid-sentence onto a second line."""
    for group in ([], ["sources"], ["rules"]):
        r = subprocess.run([sys.executable, "-m", "paperalerts", *group, "--help"],
                           capture_output=True, text=True, timeout=120,
                           env={**os.environ, "COLUMNS": "250"})
        panel = r.stdout.split("Commands")[1].splitlines()[1:-1]
        continued = [line for line in panel if line.startswith("│  ")]
        assert panel and not continued, (group, continued)

"""The subscriptions service (pipeline/subscriptions.py): one place for every subscriber, rule and
topic change, whichever face calls it; the pure validation under it (core/subscribers.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from paperalerts.core.subscribers import MAX_RULES, parse_prefs, subscriber_links
from paperalerts.edges.db import models as m
from paperalerts.edges.db import repo
from paperalerts.edges.db.engine import transaction
from paperalerts.errors import InvalidInput
from paperalerts.pipeline import subscriptions as subs

NOW = datetime(2026, 3, 12, 12, 0, tzinfo=UTC)
PREFS = parse_prefs("daily", 8, 0, "UTC")
Factory = sessionmaker[Session]


def test_core_subscribers_is_pure() -> None:
    """Importing the validation pulls in no template engine and no database; links depend only
    on their arguments (the same `now` gives the same links)."""
    code = ("import sys, paperalerts.core.subscribers;"
            "print([n for n in ('jinja2', 'sqlalchemy', 'paperalerts.edges.config') "
            "if n in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    a = subscriber_links("https://x.org", "k" * 32, 1, 1, now=NOW)
    assert a == subscriber_links("https://x.org", "k" * 32, 1, 1, now=NOW)


def test_create_refuses_duplicates_and_bad_values_naming_the_field(factory: Factory) -> None:
    """A taken address is AlreadyExists (field email); a bad status, rule or address is
    InvalidInput naming its field; nothing is written by a refused create."""
    with transaction(factory) as s:
        subs.create_subscriber(s, "Ann@Example.org", PREFS, NOW, "t", rules=["diffusion"])
    cases = [("ann@example.org", {}, "email", subs.AlreadyExists),
             ("bob@", {}, "email", InvalidInput),
             ("bob@example.org", {"status": "bounced"}, "status", InvalidInput),
             ("bob@example.org", {"rules": ['title:"open']}, "query", InvalidInput)]
    for email, kw, field, exc in cases:
        with pytest.raises(exc) as info, transaction(factory) as s:
            subs.create_subscriber(s, email, PREFS, NOW, "t", **kw)  # type: ignore[arg-type]
        assert info.value.field == field, (email, kw)
    with factory() as s:
        assert [x.email for x in s.scalars(select(m.Subscriber))] == ["ann@example.org"]


def test_max_rules_holds_for_every_face(factory: Factory, sqlite_url: str) -> None:
    """The service refuses rule MAX_RULES + 1, and so does the CLI (exit 2, which used to skip
    the check)."""
    with transaction(factory) as s:
        sub = subs.create_subscriber(s, "ann@example.org", PREFS, NOW, "t",
                                     rules=[f"word{i}" for i in range(MAX_RULES)])
        with pytest.raises(InvalidInput, match=f"at most {MAX_RULES} rules"):
            subs.add_rule(s, sub, "one more", "", "t", NOW)
    env = {**os.environ, "PAPERALERTS_DATABASE_URL": sqlite_url,
           "PAPERALERTS_SECRET_KEY": "k" * 32}
    r = subprocess.run([sys.executable, "-m", "paperalerts", "rules", "add", "ann@example.org",
                        "one more"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and f"at most {MAX_RULES} rules" in r.stderr
    with factory() as s:
        assert len(list(s.scalars(select(m.Rule)))) == MAX_RULES


def test_topic_changes_move_the_rules_version_and_drop_follows(factory: Factory) -> None:
    """Saving, editing and deleting a topic each move the version; deleting drops its follows."""
    versions = []
    with transaction(factory) as s:
        topic = subs.save_topic(s, None, NOW, "t", name="Diffusion", query="diffusion")
        sub = subs.create_subscriber(s, "ann@example.org", PREFS, NOW, "t", topics=[topic.id])
        tid = topic.id
        versions.append(repo.rules_version(s))
    with transaction(factory) as s:
        subs.save_topic(s, s.get(m.Topic, tid), NOW, "t", name="Diffusion", query="diffus*")
        versions.append(repo.rules_version(s))
    with transaction(factory) as s:
        subs.delete_topic(s, s.get_one(m.Topic, tid), "t")
        versions.append(repo.rules_version(s))
    assert versions == sorted(set(versions))
    with factory() as s:
        assert subs.topic_ids(s, sub.id) == set()


def test_bounces_and_resume(factory: Factory) -> None:
    """Soft bounces count up to the threshold, a hard one suppresses at once, an unsubscribed
    address stays unsubscribed, and resuming starts the score again."""
    with transaction(factory) as s:
        a = subs.create_subscriber(s, "a@example.org", PREFS, NOW, "t", status="active")
        b = subs.create_subscriber(s, "b@example.org", PREFS, NOW, "t", status="active")
        for _ in range(2):
            subs.record_bounce(s, a, NOW, "t", hard=False, threshold=3)
        assert (a.status, a.bounce_score) == ("active", 2)
        subs.record_bounce(s, a, NOW, "t", hard=False, threshold=3)
        assert a.status == "bounced"
        subs.unsubscribe(s, b, NOW, "t")
        subs.record_bounce(s, b, NOW, "t", hard=True, threshold=3)
        assert b.status == "unsubscribed"
        subs.resume(s, a, NOW, "t")
        assert (a.status, a.bounce_score) == ("active", 0)
        with pytest.raises(subs.NotAllowed):
            subs.pause(s, b, NOW, "t")

"""Old view keys obey link resets: the online view of a digest sent before "reset links" never
hands out the fresh manage/unsubscribe tokens; unknown and reset keys get a clear page."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from web_support import WebEnv, add_subscriber, make_admin, real_papers, seed_papers

_TOKEN_LINK = re.compile(r"/(?:manage|u|feed)/([A-Za-z0-9_.-]+)")


def _sent_digest(factory: Any, sid: int, view_key: str, sent_at: datetime, n: int = 0) -> None:
    """A sent digest carrying the n-th real paper, for the period of its send date."""
    paper = real_papers()[n]
    seed_papers(factory, [paper], sent_at)
    with transaction(factory) as s:
        rule_id = s.scalars(select(m.Rule.id).where(m.Rule.subscriber_id == sid)).first()
        d = m.Delivery(subscriber_id=sid, kind="digest", period_key=sent_at.isoformat(),
                       status="sent", view_key=view_key, sent_at=sent_at, created_at=sent_at)
        s.add(d)
        s.flush()
        s.add(m.Match(subscriber_id=sid, paper_id=paper.id, matched_at=sent_at, delivery_id=d.id,
                      explanation={"rules": [{"rule_id": rule_id, "topic_id": None, "name": "mine",
                                              "query": "x", "terms": ["x"], "hits": []}]}))


def test_view_key_opened_after_a_link_reset_hands_out_no_fresh_tokens(factory: Any) -> None:
    """After an admin resets a subscriber's links, the online view of a digest sent before the
    reset shows a "this link was reset" page (410) carrying no manage/unsubscribe/feed token,
    while a digest sent after the reset still renders with its (current) links."""
    sid = add_subscriber(factory, "v@example.org", rules=("diffusion",))
    earlier = datetime.now(UTC) - timedelta(hours=1)
    _sent_digest(factory, sid, "old" + "k" * 29, earlier)
    make_admin(factory)
    env = WebEnv.start(factory)
    before = env.client.get("/d/old" + "k" * 29)
    assert before.status_code == 200 and _TOKEN_LINK.search(before.text)
    env.login()
    r = env.post_form(f"/admin/subscribers/{sid}", f"/admin/subscribers/{sid}/links/reset", {},
                      follow_redirects=False)
    assert r.status_code == 303
    after = env.client.get("/d/old" + "k" * 29)
    assert after.status_code == 410, after.text[:500]
    assert "reset" in after.text.lower()
    assert not _TOKEN_LINK.search(after.text), "a reset view key must not hand out fresh links"
    with factory() as s:
        sub = s.scalars(select(m.Subscriber).where(m.Subscriber.id == sid)).one()
        later = (sub.links_reset_at or earlier).replace(tzinfo=UTC) + timedelta(seconds=5)
    _sent_digest(factory, sid, "new" + "k" * 29, later, n=1)
    fresh = env.client.get("/d/new" + "k" * 29)
    assert fresh.status_code == 200 and _TOKEN_LINK.search(fresh.text)


def test_unknown_view_key_is_a_clear_404_page(factory: Any) -> None:
    """A key that names no sent digest is a 404 page saying so, not an error or a blank page."""
    env = WebEnv.start(factory)
    r = env.client.get("/d/" + "z" * 32)
    assert r.status_code == 404 and "no digest at this address" in r.text.lower()

"""In-email feedback (issue 13) over the real app, the real delivery pipeline and a real SMTP
sink, on real arXiv papers: the links every digest carries, the confirm page a GET shows, the
POST that records and says what changed, undo, refusals (tampered, wrong purpose, replayed,
revoked), mutes and follows, the manage page and the admin's counts."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from feedback_support import (
    RETRIEVAL_DAY1,
    arxiv_fixture,
    digest_round,
    feedback_links_in,
    html_of,
    path_of,
    text_of,
)
from paperalerts.core.tokens import make_token
from paperalerts.edges.db import models as m
from paperalerts.edges.db.engine import transaction
from smtp_sink import SMTPSink
from web_support import SECRET, WebEnv, add_subscriber, make_admin, seed_papers

RULE = "title:retrieval"
T0 = datetime(2026, 8, 12, 20, 0, tzinfo=UTC)


@pytest.fixture
def env(factory: sessionmaker[Session], sink: SMTPSink) -> Iterator[WebEnv]:
    yield WebEnv.start(factory, sink.url, recommend_min_positives=1)


@pytest.fixture
def day1(env: WebEnv, sink: SMTPSink) -> tuple[int, dict[tuple[str, str], str], list[str]]:
    """A subscriber with the rule `title:retrieval` got the first digest of real arXiv papers:
    (subscriber id, its feedback links, the matched paper ids in the email's order)."""
    papers = arxiv_fixture(RETRIEVAL_DAY1)
    seed_papers(env.factory, papers, T0 - timedelta(hours=1))
    sid = add_subscriber(env.factory, "reader@example.org", rules=(RULE,), now=T0)
    (msg,) = digest_round(env.factory, env.settings, sink, T0)
    matched = [p.id for p in papers if "retrieval" in p.title.lower()]
    assert len(matched) >= 3
    return sid, feedback_links_in(text_of(msg)), matched


def _post(env: WebEnv, url: str, data: dict[str, str] | None = None) -> tuple[int, str]:
    """POST a feedback link with this browser's CSRF token (taken from the sign-up page, since a
    used link's page has no form)."""
    r = env.post_form("/signup", path_of(url), data or {})
    return r.status_code, r.text


def _labels(env: WebEnv) -> dict[str, str]:
    with env.factory() as s:
        return dict(s.execute(select(m.Feedback.paper_id, m.Feedback.label)).all())


def test_every_paper_of_a_digest_carries_four_signed_links_in_both_parts(
    env: WebEnv, sink: SMTPSink, day1: tuple[int, dict[tuple[str, str], str], list[str]]
) -> None:
    """Each matched paper gets more / not relevant / mute / follow links, in the text and the
    HTML part, each token naming this subscriber, that paper and that email (d<delivery id>)."""
    _, links, matched = day1
    assert set(links) == {(pid, a) for pid in matched for a in ("more", "less", "mute", "follow")}
    html = html_of(sink.messages[-1].message)
    assert all(url.replace("&", "&amp;") in html for url in links.values())
    assert "More like this" in html and "Not relevant" in html and "Mute author" in html


def test_a_get_only_shows_a_confirm_page_and_changes_nothing(
    env: WebEnv, day1: tuple[int, dict[tuple[str, str], str], list[str]]
) -> None:
    """Mail scanners prefetch links: a GET shows the paper and one button, and records nothing."""
    _, links, matched = day1
    for action in ("more", "less", "mute", "follow"):
        r = env.client.get(path_of(links[(matched[0], action)]))
        assert r.status_code == 200 and "<form method=\"post\"" in r.text
    with env.factory() as s:
        assert s.scalars(select(m.Feedback)).all() == []
        assert s.scalars(select(m.AuthorPref)).all() == []
        assert s.scalars(select(m.FeedbackEvent)).all() == []


def test_post_records_more_like_this_says_what_changed_and_undo_restores(
    env: WebEnv, day1: tuple[int, dict[tuple[str, str], str], list[str]]
) -> None:
    """POST records the verdict and says so, with an undo button whose own token restores the
    state before; an undo link, too, applies once."""
    _, links, matched = day1
    status, page = _post(env, links[(matched[0], "less")])
    assert status == 200 and "was not relevant to you" in page
    status, page = _post(env, links[(matched[0], "more")])
    assert status == 200 and "you want more papers like" in page
    assert _labels(env) == {matched[0]: "more"}
    undo = next(a.split('"')[0] for a in page.split('action="')[1:] if a.startswith("/fu/"))
    r = env.post_form("/signup", undo, {})
    assert r.status_code == 200 and "Undone" in r.text
    assert _labels(env) == {matched[0]: "less"}  # back to the verdict before, not to nothing
    again = env.post_form("/signup", undo, {})
    assert again.status_code == 409 and _labels(env) == {matched[0]: "less"}


def _tamper_payload(token: str, paper_id: str) -> str:
    """The same signature over an edited payload (another paper)."""
    payload, rest = token.split(".", 1)
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data[2] = paper_id
    edited = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode())
    return edited.decode().rstrip("=") + "." + rest


def test_tampered_and_wrong_purpose_feedback_tokens_are_refused(
    env: WebEnv, day1: tuple[int, dict[tuple[str, str], str], list[str]]
) -> None:
    """An edited payload, a broken signature, a manage token in a feedback link and an unknown
    action are refused (400, "not valid") on GET and POST, and nothing is recorded."""
    sid, links, matched = day1
    url = links[(matched[0], "more")]
    token = path_of(url).split("/")[2]
    forged = [
        f"/f/{_tamper_payload(token, matched[1])}/more",
        f"/f/{token[:-3]}{'AAA' if token[-3:] != 'AAA' else 'BBB'}/more",
        f"/f/{make_token(SECRET, 'manage', sid, 1)}/more",
        f"/f/{token}/delete-everything",
    ]
    for path in forged:
        assert env.client.get(path).status_code == 400, path
        r = env.client.post(path, data={"csrf_token": env.token("/signup")})
        assert r.status_code == 400 and "not valid" in r.text, path
    assert _labels(env) == {}


def test_a_replayed_feedback_link_is_refused_and_changes_nothing(
    env: WebEnv, day1: tuple[int, dict[tuple[str, str], str], list[str]]
) -> None:
    """Replay = the same email link applied twice. The second POST is refused with 409 and a
    pointer to the manage page, even after an undo (so a captured link cannot flip the state
    back); the other links of the same paper still work."""
    _, links, matched = day1
    url = links[(matched[0], "more")]
    assert _post(env, url)[0] == 200
    status, page = _post(env, url)
    assert status == 409 and "already used" in page and "/manage/" in page
    assert env.client.get(path_of(url)).status_code == 409  # the GET says so too, no button
    with env.factory() as s:
        event = s.scalars(select(m.FeedbackEvent)).one()
        event.undone_at = datetime.now(UTC)
        s.delete(s.scalars(select(m.Feedback)).one())
        s.commit()
    assert _post(env, url)[0] == 409 and _labels(env) == {}
    assert _post(env, links[(matched[0], "less")])[0] == 200
    assert _labels(env) == {matched[0]: "less"}


def test_links_die_with_the_subscribers_token_version(
    env: WebEnv, day1: tuple[int, dict[tuple[str, str], str], list[str]]
) -> None:
    """Bumping the token version (the "revoke my links" lever) revokes feedback links too."""
    sid, links, matched = day1
    with transaction(env.factory) as s:
        s.get_one(m.Subscriber, sid).token_version += 1
    path = path_of(links[(matched[0], "more")])
    assert env.client.get(path).status_code == 400
    r = env.client.post(path, data={"csrf_token": env.token("/signup")})
    assert r.status_code == 400 and "no longer valid" in r.text and _labels(env) == {}


def test_mute_suppresses_the_authors_papers_and_follow_adds_an_author_rule(
    env: WebEnv, sink: SMTPSink, day1: tuple[int, dict[tuple[str, str], str], list[str]]
) -> None:
    """Muting an author hides their later papers from digests; following one creates the rule
    ``author:"Name"``, which then brings their papers even when no keyword matches."""
    sid, links, matched = day1
    papers = {p.id: p for p in arxiv_fixture(RETRIEVAL_DAY1)}
    muted_name = papers[matched[0]].authors[0]
    followed_name = papers[matched[1]].authors[-1]
    status, page = _post(env, links[(matched[0], "mute")])  # default: the first author
    assert status == 200 and f"Muted {muted_name}" in page
    key = followed_name.lower()
    status, page = _post(env, links[(matched[1], "follow")], {"author": key})
    assert status == 200 and f'the rule author:"{followed_name}" was added' in unescape(page)
    with env.factory() as s:
        queries = list(s.scalars(select(m.Rule.query).where(m.Rule.subscriber_id == sid)))
    assert queries == [RULE, f'author:"{followed_name}"']
    base = papers[matched[2]]
    by_muted = replace(base, id="2608.99001", title=base.title + " (muted author)",
                       authors=(muted_name, "Someone Else"))
    by_followed = replace(papers[next(p for p in papers if p not in matched)], id="2608.99002",
                          title="A paper on nothing in the rule", authors=(followed_name,))
    seed_papers(env.factory, [by_muted, by_followed], T0 + timedelta(hours=2))
    (msg,) = digest_round(env.factory, env.settings, sink, T0 + timedelta(days=1))
    body = text_of(msg)
    assert "A paper on nothing in the rule" in body
    assert "(muted author)" not in body


def test_the_manage_page_lists_feedback_and_edits_it(
    env: WebEnv, day1: tuple[int, dict[tuple[str, str], str], list[str]]
) -> None:
    """The manage page shows verdicts and muted authors; changing a verdict and unmuting there
    take effect."""
    sid, links, matched = day1
    _post(env, links[(matched[0], "more")])
    _post(env, links[(matched[1], "mute")])
    manage = f"/manage/{make_token(SECRET, 'manage', sid, 1)}"
    page = env.client.get(manage).text
    assert "Your feedback" in page and "More like this" in page and "Muted:" in page
    r = env.post_form(manage, f"{manage}/feedback", {"paper_id": matched[0], "label": "less"})
    assert r.status_code == 200 and "Your feedback is saved." in r.text
    assert _labels(env) == {matched[0]: "less"}
    with env.factory() as s:
        pref_id = s.scalars(select(m.AuthorPref.id)).one()
    env.post_form(manage, f"{manage}/authors/{pref_id}/delete", {})
    env.post_form(manage, f"{manage}/feedback", {"paper_id": matched[0], "label": ""})
    with env.factory() as s:
        assert s.scalars(select(m.AuthorPref)).all() == []
    assert _labels(env) == {}


def test_admin_sees_feedback_counts_per_rule(
    env: WebEnv, day1: tuple[int, dict[tuple[str, str], str], list[str]]
) -> None:
    """The admin's feedback page counts verdicts per rule that brought the papers (noise =
    share of "not relevant")."""
    _, links, matched = day1
    _post(env, links[(matched[0], "more")])
    _post(env, links[(matched[1], "less")])
    _post(env, links[(matched[2], "less")])
    make_admin(env.factory)
    env.login()
    page = env.client.get("/admin/feedback").text
    row = next(r for r in page.split('<tr class="noise-row">')[1:] if RULE in r)
    cells = [c.split("</td>")[0] for c in row.split("<td>")[1:]]
    assert cells[0] == "rule" and cells[2:5] == ["1", "2", "67%"]


def test_admin_sees_feedback_counts_per_topic(env: WebEnv, sink: SMTPSink) -> None:
    """Verdicts on papers a followed topic brought are counted against that topic."""
    papers = arxiv_fixture(RETRIEVAL_DAY1)
    seed_papers(env.factory, papers, T0 - timedelta(hours=1))
    sid = add_subscriber(env.factory, "topics@example.org", now=T0)
    with transaction(env.factory) as s:
        topic = m.Topic(name="Retrieval", query=RULE, normalized=RULE)
        s.add(topic)
        s.flush()
        s.add(m.SubscriberTopic(subscriber_id=sid, topic_id=topic.id))
    (msg,) = digest_round(env.factory, env.settings, sink, T0)
    links = feedback_links_in(text_of(msg))
    pid = next(p for p, a in links if a == "less")
    _post(env, links[(pid, "less")])
    make_admin(env.factory)
    env.login()
    page = env.client.get("/admin/feedback").text
    row = next(r for r in page.split('<tr class="noise-row">')[1:] if "Retrieval</a>" in r)
    cells = [c.split("</td>")[0] for c in row.split("<td>")[1:]]
    assert cells[0] == "topic" and cells[2:5] == ["0", "1", "100%"]

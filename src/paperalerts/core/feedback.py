"""In-email feedback: the signed one-click links under each paper, and author identity. Pure.

Each paper in a digest carries four links (``more``, ``less``, ``mute``, ``follow``) to
``BASE_URL/f/TOKEN/ACTION``. One token per (subscriber, paper, email) serves the four actions:
it is signed with the "feedback" purpose and carries ``[subscriber_id, token_version, paper_id,
nonce]``, so it cannot be edited to name another paper or subscriber, and bumping the
subscriber's token version revokes it like every other link.

**Replay.** The nonce names the email the link came from (``d<delivery id>``). Applying an
action records the key ``nonce:paper:action``; the same link applied a second time is refused
("replayed"), even after an undo, so a captured or prefetched-and-resubmitted link cannot flip
state back and forth. Undo has its own single-use token naming the feedback event it reverses.
Changing one's mind later is done on the manage page (login by the manage link, no replay).

**Authors.** An author is known by a normalised name (casefolded, accents stripped, spacing
collapsed) plus, where the source has one, a Hugging Face user id (``hf:<user>``, from
``Paper.extra["author_ids"]``; arXiv feeds carry no author ids). A mute matches either.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal, get_args

from paperalerts.core.paper_links import Link
from paperalerts.core.papers import Paper
from paperalerts.core.rules.text import normalise
from paperalerts.core.tokens import make_payload_token, read_payload_token
from paperalerts.errors import TokenError

Action = Literal["more", "less", "mute", "follow"]
ACTIONS: Final[tuple[Action, ...]] = get_args(Action)
Label = Literal["more", "less"]
LINK_LABELS: Final[dict[Action, str]] = {
    "more": "More like this",
    "less": "Not relevant",
    "mute": "Mute author",
    "follow": "Follow author",
}
NONCE_RE: Final = re.compile(r"^[a-z0-9]{1,40}$")
PAPER_ID_MAX: Final = 200
_SPACE_RE: Final = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class FeedbackClaim:
    """What a verified feedback token says: who, about which paper, from which email."""

    subscriber_id: int
    token_version: int
    paper_id: str
    nonce: str

    def use_key(self, action: str) -> str:
        """The key recorded when `action` is applied through this link (replay protection)."""
        return f"{self.nonce}:{self.paper_id}:{action}"


def parse_action(raw: str) -> Action:
    """`raw` as an Action, or ValueError naming the four allowed ones."""
    if raw not in ACTIONS:
        raise ValueError(f"unknown feedback action {raw!r}; expected one of {', '.join(ACTIONS)}")
    return raw  # narrowed to Action by the membership test above


def make_feedback_token(
    secret: str, subscriber_id: int, token_version: int, paper_id: str, nonce: str,
    *, now: datetime | None = None,
) -> str:
    """The token of one paper's feedback links in one email. ValueError for a bad nonce/id."""
    if not NONCE_RE.match(nonce):
        raise ValueError(f"nonce must be 1-40 lower-case letters or digits, got {nonce!r}")
    if not paper_id or len(paper_id) > PAPER_ID_MAX:
        raise ValueError(f"paper id must be 1-{PAPER_ID_MAX} characters")
    return make_payload_token(
        secret, "feedback", [subscriber_id, token_version, paper_id, nonce], now=now
    )


def read_feedback_token(
    secret: str, token: str, max_age: timedelta | None = None, *, now: datetime | None = None
) -> FeedbackClaim:
    """Verify a feedback token; TokenError (``malformed``, ``tampered``, ``expired``,
    ``wrong_purpose``) otherwise."""
    payload = read_payload_token(secret, "feedback", token, max_age, now=now)
    if (
        len(payload) != 4
        or not isinstance(payload[2], str)
        or not isinstance(payload[3], str)
        or not NONCE_RE.match(payload[3])
    ):
        raise TokenError("the feedback link carries an unexpected payload", reason="malformed")
    return FeedbackClaim(payload[0], payload[1], payload[2], payload[3])


def make_undo_token(
    secret: str, subscriber_id: int, token_version: int, event_id: int,
    *, now: datetime | None = None,
) -> str:
    """The token of the "undo" button shown after a feedback was applied."""
    return make_payload_token(secret, "undo", [subscriber_id, token_version, event_id], now=now)


def read_undo_token(
    secret: str, token: str, max_age: timedelta | None = None, *, now: datetime | None = None
) -> tuple[int, int, int]:
    """``(subscriber_id, token_version, event_id)`` of a verified undo token; TokenError else."""
    payload = read_payload_token(secret, "undo", token, max_age, now=now)
    if len(payload) != 3 or not isinstance(payload[2], int) or isinstance(payload[2], bool):
        raise TokenError("the undo link carries an unexpected payload", reason="malformed")
    return payload[0], payload[1], payload[2]


def feedback_links(
    base_url: str, secret: str, subscriber_id: int, token_version: int,
    paper_ids: Iterable[str], nonce: str, *, now: datetime | None = None,
) -> dict[str, tuple[Link, ...]]:
    """paper id -> its four feedback links (in `ACTIONS` order) for one email."""
    base = base_url.rstrip("/")
    out: dict[str, tuple[Link, ...]] = {}
    for pid in paper_ids:
        token = make_feedback_token(secret, subscriber_id, token_version, pid, nonce, now=now)
        out[pid] = tuple(Link(LINK_LABELS[a], f"{base}/f/{token}/{a}") for a in ACTIONS)
    return out


@dataclass(frozen=True, slots=True)
class Author:
    """One author of a paper: the name as shown, its normalised key and the HF user id if any."""

    name: str
    key: str
    hf_id: str | None = None


def author_key(name: str) -> str:
    """The normalised name: casefolded, accents stripped, dots/hyphens as spaces, spaces
    collapsed (``"José  A. García-López"`` -> ``"jose a garcia lopez"``)."""
    return _SPACE_RE.sub(" ", re.sub(r"[.\-‐,_]", " ", normalise(name))).strip()


def authors_of(paper: Paper) -> tuple[Author, ...]:
    """The paper's authors with their ids (``extra["author_ids"]`` aligned with ``authors``)."""
    ids = paper.extra.get("author_ids")
    id_list = ids if isinstance(ids, list) and len(ids) == len(paper.authors) else []
    out = []
    for i, name in enumerate(paper.authors):
        hf = id_list[i] if id_list and isinstance(id_list[i], str) else None
        out.append(Author(name, author_key(name), hf))
    return tuple(out)


def find_author(paper: Paper, wanted: str) -> Author | None:
    """The author of `paper` whose key or HF id is `wanted`, else None."""
    return next((a for a in authors_of(paper) if wanted in (a.key, a.hf_id)), None)


def muted_author(paper: Paper, muted: Collection[str]) -> Author | None:
    """The first author of `paper` whose normalised name or HF id is in `muted`, else None."""
    return next(
        (a for a in authors_of(paper) if a.key in muted or (a.hf_id and a.hf_id in muted)), None
    )


def follow_rule(name: str) -> str:
    """The rule a follow creates: ``author:"<name>"`` (quotes and backslashes dropped from the
    name, which the rule language matches case-, accent- and punctuation-insensitively)."""
    clean = _SPACE_RE.sub(" ", re.sub(r'["\\]', " ", name)).strip()
    if not clean:
        raise ValueError("an author rule needs a name")
    return f'author:"{clean}"'

"""The tables. SQLAlchemy 2 typed mappings; the same schema on SQLite and PostgreSQL.

Times are stored as UTC and always come back timezone-aware (`UTCDateTime`), whatever the backend.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Final

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC out (SQLite keeps no zone; naive input is refused)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime,
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class Source(Base):
    """A watched page or feed, with its conditional-GET validators and its health."""

    __tablename__ = "source"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    url: Mapped[str] = mapped_column(Text)
    # what subscribers read in the digest's footer; "" = derived from kind and URL
    display_name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    every_seconds: Mapped[int] = mapped_column(Integer, default=1800)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    backfill: Mapped[bool] = mapped_column(Boolean, default=False)
    # What the kind needs beyond the URL (html: {"selectors": {...}}); None for most kinds.
    options: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    etag: Mapped[str | None] = mapped_column(Text, default=None)
    last_modified: Mapped[str | None] = mapped_column(Text, default=None)
    next_run_at: Mapped[datetime | None] = mapped_column(default=None)
    health: Mapped[str] = mapped_column(String(10), default="ok")  # ok / degraded / failing
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    last_run_at: Mapped[datetime | None] = mapped_column(default=None)
    last_success_at: Mapped[datetime | None] = mapped_column(default=None)
    failing_since: Mapped[datetime | None] = mapped_column(default=None)
    last_entry_count: Mapped[int | None] = mapped_column(Integer, default=None)
    last_new_count: Mapped[int] = mapped_column(Integer, default=0)
    quiet_day: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @validates("url")
    def _url_changed(self, _key: str, url: str) -> str:
        # Validators belong to the URL they came from: a conditional GET to a new URL with the
        # old one's Last-Modified could be answered 304 and the new page never read.
        if self.url is not None and url != self.url:
            self.etag = None
            self.last_modified = None
        return url


class Snapshot(Base):
    """One scrape of a source: what it saw, or why it was rejected."""

    __tablename__ = "snapshot"
    __table_args__ = (Index("ix_snapshot_source_fetched", "source_id", "fetched_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("source.id", ondelete="CASCADE"))
    fetched_at: Mapped[datetime]
    # ok / rejected / failed, plus "unchanged" (HTTP 304), "quiet" (empty skip day)
    status: Mapped[str] = mapped_column(String(10))
    entry_ids: Mapped[list[Any]] = mapped_column(default=list)
    entry_count: Mapped[int] = mapped_column(Integer, default=0)
    new_count: Mapped[int] = mapped_column(Integer, default=0)
    updated_count: Mapped[int] = mapped_column(Integer, default=0)
    baseline: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text, default=None)


class Paper(Base):
    """One paper, whatever sources reported it (canonical id: arXiv id without version)."""

    __tablename__ = "paper"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    abstract: Mapped[str] = mapped_column(Text, default="")
    authors: Mapped[list[Any]] = mapped_column(default=list)
    url: Mapped[str] = mapped_column(Text, default="")
    pdf_url: Mapped[str | None] = mapped_column(Text, default=None)
    code_url: Mapped[str | None] = mapped_column(Text, default=None)
    organization: Mapped[str | None] = mapped_column(Text, default=None)
    published: Mapped[datetime | None] = mapped_column(default=None)
    upvotes: Mapped[int | None] = mapped_column(Integer, default=None)
    comments: Mapped[int | None] = mapped_column(Integer, default=None)
    keywords: Mapped[list[Any]] = mapped_column(default=list)
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    sightings: Mapped[list[PaperSource]] = relationship(back_populates="paper")


class PaperSource(Base):
    """That a source has listed a paper: the per-source memory of everything ever seen."""

    __tablename__ = "paper_source"

    paper_id: Mapped[str] = mapped_column(
        ForeignKey("paper.id", ondelete="CASCADE"), primary_key=True
    )
    source_id: Mapped[int] = mapped_column(
        ForeignKey("source.id", ondelete="CASCADE"), primary_key=True
    )
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]

    paper: Mapped[Paper] = relationship(back_populates="sightings")


class PaperEvent(Base):
    """A paper that is new or changed, as one scrape saw it. `matched_at`: the matcher's cursor."""

    __tablename__ = "paper_event"
    __table_args__ = (Index("ix_paper_event_unmatched", "matched_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    paper_id: Mapped[str] = mapped_column(ForeignKey("paper.id", ondelete="CASCADE"))
    source_id: Mapped[int | None] = mapped_column(
        ForeignKey("source.id", ondelete="SET NULL"), default=None
    )
    snapshot_id: Mapped[int | None] = mapped_column(
        ForeignKey("snapshot.id", ondelete="SET NULL"), default=None
    )
    kind: Mapped[str] = mapped_column(String(10))  # new / updated
    changes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # An update's paper as rules saw it before the change (`Paper.to_json`, with its "sources"):
    # matching sends it only through rules whose verdict turned. None for a new paper.
    previous: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    at: Mapped[datetime]
    matched_at: Mapped[datetime | None] = mapped_column(default=None)


class Subscriber(Base):
    __tablename__ = "subscriber"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    # pending / active / paused / unsubscribed / bounced
    status: Mapped[str] = mapped_column(String(15), default="pending", index=True)
    frequency: Mapped[str] = mapped_column(String(10), default="daily")  # instant / daily / weekly
    send_hour: Mapped[int] = mapped_column(Integer, default=8)
    weekday: Mapped[int] = mapped_column(Integer, default=0)  # 0 = Monday
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    next_digest_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    bounce_score: Mapped[int] = mapped_column(Integer, default=0)
    token_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(default=None)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(default=None)
    # When the links were last reset: online views of digests sent before it are refused.
    links_reset_at: Mapped[datetime | None] = mapped_column(default=None)

    rules: Mapped[list[Rule]] = relationship(back_populates="subscriber", passive_deletes=True)


class SignupRequest(Base):
    """What one sign-up form asked for (schedule, rules, topics), applied when the link emailed
    for it is confirmed, never before: anyone can type any address into the form. Every sign-up
    writes one, whatever the address's state, so the form does the same work for an address we
    know as for a new one."""

    __tablename__ = "signup_request"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscriber.id", ondelete="CASCADE"), index=True)
    frequency: Mapped[str] = mapped_column(String(10))
    send_hour: Mapped[int] = mapped_column(Integer)
    weekday: Mapped[int] = mapped_column(Integer)
    timezone: Mapped[str] = mapped_column(String(64))
    rules: Mapped[list[Any]] = mapped_column(JSON)
    topics: Mapped[list[Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Rule(Base):
    __tablename__ = "rule"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscriber.id", ondelete="CASCADE"), index=True
    )
    query: Mapped[str] = mapped_column(Text)
    normalized: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(String(200), default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    subscriber: Mapped[Subscriber] = relationship(back_populates="rules")


class Topic(Base):
    """An admin-curated named rule that subscribers can follow."""

    __tablename__ = "topic"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    query: Mapped[str] = mapped_column(Text)
    normalized: Mapped[str] = mapped_column(Text)
    public: Mapped[bool] = mapped_column(Boolean, default=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SubscriberTopic(Base):
    __tablename__ = "subscriber_topic"

    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscriber.id", ondelete="CASCADE"), primary_key=True
    )
    topic_id: Mapped[int] = mapped_column(
        ForeignKey("topic.id", ondelete="CASCADE"), primary_key=True
    )


class Match(Base):
    """A paper for a subscriber: at most once, ever (unique subscriber + paper)."""

    __tablename__ = "match"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "paper_id", name="uq_match_subscriber_paper"),
        Index("ix_match_undelivered", "subscriber_id", "delivery_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id", ondelete="CASCADE"))
    paper_id: Mapped[str] = mapped_column(ForeignKey("paper.id", ondelete="CASCADE"))
    rule_id: Mapped[int | None] = mapped_column(
        ForeignKey("rule.id", ondelete="SET NULL"), default=None
    )
    topic_id: Mapped[int | None] = mapped_column(
        ForeignKey("topic.id", ondelete="SET NULL"), default=None
    )
    # {"rules": [{"rule_id", "topic_id", "name", "query", "terms": [...], "hits": [...]}]}
    explanation: Mapped[dict[str, Any]] = mapped_column(default=dict)
    event_id: Mapped[int | None] = mapped_column(
        ForeignKey("paper_event.id", ondelete="SET NULL"), default=None
    )
    matched_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("delivery.id", ondelete="SET NULL"), default=None
    )


# A delivery row: queued -> sending (leased) -> sent; back to queued for a retry; or failed.
DELIVERY_STATUSES: Final = ("queued", "sending", "sent", "failed")


class Delivery(Base):
    """One email to one subscriber for one period; the send claims it with a lease."""

    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "kind", "period_key", name="uq_delivery_period"),
        Index("ix_delivery_status", "status", "lease_until"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))  # digest / alert / confirm / notice
    period_key: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(10), default="queued")  # one of DELIVERY_STATUSES
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    message_id: Mapped[str | None] = mapped_column(String(300), default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    view_key: Mapped[str | None] = mapped_column(String(64), default=None, unique=True)
    subject: Mapped[str | None] = mapped_column(Text, default=None)
    resend_of: Mapped[int | None] = mapped_column(
        ForeignKey("delivery.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)


class Admin(Base):
    __tablename__ = "admin"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(default=None)


class AdminSession(Base):
    """A logged-in admin session. The cookie carries a random id; only its SHA-256 is stored,
    and logging out deletes the row, so the cookie is dead at once (not at its expiry)."""

    __tablename__ = "admin_session"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of the cookie id
    admin_id: Mapped[int] = mapped_column(ForeignKey("admin.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class ApiToken(Base):
    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    admin_id: Mapped[int | None] = mapped_column(
        ForeignKey("admin.id", ondelete="CASCADE"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class AuditLog(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(50))
    entity: Mapped[str] = mapped_column(String(50))
    entity_id: Mapped[str] = mapped_column(String(100))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


class State(Base):
    """Small named counters and marks: the rules version, the last tick."""

    __tablename__ = "state"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class InboundMail(Base):
    """A message read from the mailbox (unsubscribe request, bounce report, complaint), keyed by
    the SHA-256 of its bytes and written in the same transaction as its effect, so a message is
    never applied twice even when marking it processed in the mailbox fails."""

    __tablename__ = "inbound_mail"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # unsubscribe / hard / soft / complaint / other
    email: Mapped[str | None] = mapped_column(String(320), default=None)
    detail: Mapped[str] = mapped_column(Text, default="")
    processed_at: Mapped[datetime] = mapped_column(default=utcnow)


class Feedback(Base):
    """A subscriber's current verdict on a paper ("more" or "not relevant"; issue 13). The rule
    or topic that brought the paper (None for a recommendation) is kept so the admin can see
    which rules produce noise."""

    __tablename__ = "feedback"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "paper_id", name="uq_feedback_subscriber_paper"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id", ondelete="CASCADE"))
    paper_id: Mapped[str] = mapped_column(ForeignKey("paper.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(10))  # more / less
    rule_id: Mapped[int | None] = mapped_column(
        ForeignKey("rule.id", ondelete="SET NULL"), default=None
    )
    topic_id: Mapped[int | None] = mapped_column(
        ForeignKey("topic.id", ondelete="SET NULL"), default=None
    )
    recommended: Mapped[bool] = mapped_column(Boolean, default=False)
    via: Mapped[str] = mapped_column(String(10), default="email")  # email / manage
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuthorPref(Base):
    """A muted or followed author of one subscriber: normalised name, plus the HF user id when
    the source had one. A follow owns the ``author:"..."`` rule it created."""

    __tablename__ = "author_pref"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "author_key", name="uq_author_pref_subscriber_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscriber.id", ondelete="CASCADE"), index=True
    )
    author_key: Mapped[str] = mapped_column(String(300))
    author_name: Mapped[str] = mapped_column(String(300))
    hf_id: Mapped[str | None] = mapped_column(String(200), default=None)
    action: Mapped[str] = mapped_column(String(10))  # mute / follow
    rule_id: Mapped[int | None] = mapped_column(
        ForeignKey("rule.id", ondelete="SET NULL"), default=None
    )
    paper_id: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FeedbackEvent(Base):
    """One feedback change, with the state before and after (for undo). `use_key` names the
    email link that made it (``nonce:paper:action``): unique per subscriber, so a link applies
    once (replay protection); None for changes made on the manage page."""

    __tablename__ = "feedback_event"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "use_key", name="uq_feedback_event_use"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id", ondelete="CASCADE"))
    paper_id: Mapped[str | None] = mapped_column(String(200), default=None)
    action: Mapped[str] = mapped_column(String(10))  # more / less / mute / follow / clear
    use_key: Mapped[str | None] = mapped_column(String(300), default=None)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    undone_at: Mapped[datetime | None] = mapped_column(default=None)


class Recommendation(Base):
    """A paper shown to a subscriber under "You might also like": at most once per paper, like a
    match; its score and the terms given as the reason."""

    __tablename__ = "recommendation"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "paper_id", name="uq_recommendation_subscriber_paper"),
        Index("ix_recommendation_delivery", "delivery_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id", ondelete="CASCADE"))
    paper_id: Mapped[str] = mapped_column(ForeignKey("paper.id", ondelete="CASCADE"))
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("delivery.id", ondelete="SET NULL"), default=None
    )
    score: Mapped[float] = mapped_column(Float)
    terms: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

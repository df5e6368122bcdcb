"""The JSON API's request and response bodies (pydantic), published in its OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _no_control(value: str) -> str:
    if any(ord(c) < 32 and c not in "\t\n\r" for c in value):
        raise ValueError("control characters are not allowed")
    return value


Text = Annotated[str, AfterValidator(_no_control)]
Id = Annotated[int, Field(ge=1, le=2**31 - 1)]
Status = Literal["pending", "active", "paused", "unsubscribed", "bounced"]
Frequency = Literal["instant", "daily", "weekly"]


class Error(BaseModel):
    detail: str


class SubscriberOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    name: str
    status: str
    frequency: str
    send_hour: int
    weekday: int
    timezone: str
    next_digest_at: datetime | None
    created_at: datetime
    confirmed_at: datetime | None
    unsubscribed_at: datetime | None
    topics: list[int] = Field(default_factory=list)
    rule_count: int = Field(0, description="How many rules the subscriber has.")


class SubscriberIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    email: Annotated[Text, Field(min_length=3, max_length=320)]
    name: Annotated[Text, Field(max_length=200)] = ""
    status: Literal["pending", "active", "paused"] = "active"
    frequency: Frequency = "daily"
    send_hour: Annotated[int, Field(ge=0, le=23)] = 8
    weekday: Annotated[int, Field(ge=0, le=6, description="0 = Monday")] = 0
    timezone: Annotated[Text, Field(min_length=1, max_length=64)] = "UTC"
    topics: Annotated[list[Id], Field(max_length=100)] = Field(default_factory=list)


class SubscriberPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    email: Annotated[Text, Field(min_length=3, max_length=320)] | None = None
    name: Annotated[Text, Field(max_length=200)] | None = None
    status: Status | None = None
    frequency: Frequency | None = None
    send_hour: Annotated[int, Field(ge=0, le=23)] | None = None
    weekday: Annotated[int, Field(ge=0, le=6)] | None = None
    timezone: Annotated[Text, Field(min_length=1, max_length=64)] | None = None
    topics: Annotated[list[Id], Field(max_length=100)] | None = None


class RuleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    subscriber_id: int
    query: str
    normalized: str
    name: str
    enabled: bool
    created_at: datetime
    updated_at: datetime


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    query: Annotated[Text, Field(min_length=1, max_length=1000)]
    name: Annotated[Text, Field(max_length=200)] = ""
    enabled: bool = True


class RulePatch(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    query: Annotated[Text, Field(min_length=1, max_length=1000)] | None = None
    name: Annotated[Text, Field(max_length=200)] | None = None
    enabled: bool | None = None


class SourceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    kind: str
    url: str
    every_seconds: int
    enabled: bool
    backfill: bool
    health: str
    consecutive_failures: int
    last_error: str | None
    last_run_at: datetime | None
    last_success_at: datetime | None
    last_entry_count: int | None
    next_run_at: datetime | None
    options: dict[str, Any] | None = Field(
        default=None, description='What the kind needs beyond the URL (html: {"selectors": ...}).'
    )


class SourceIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: Annotated[Text, Field(min_length=1, max_length=100)]
    kind: Literal["hf-papers", "hf-api", "arxiv", "feed", "html"]
    url: Annotated[Text, Field(min_length=8, max_length=2000)]
    every: Annotated[Text, Field(max_length=20, description="e.g. 30m, 2h")] = "30m"
    enabled: bool = True
    backfill: bool = False
    display_name: Annotated[Text, Field(max_length=200, description=(
        "What subscribers read in their digests; empty: from the kind and URL"))] = ""
    selectors: dict[str, Annotated[Text, Field(max_length=2000)]] | None = Field(
        default=None,
        description="html sources only: CSS selectors item, title, link (required), id, "
        "abstract, authors; a selector may end in @attribute.",
    )


class SourcePatch(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    url: Annotated[Text, Field(min_length=8, max_length=2000)] | None = None
    every: Annotated[Text, Field(max_length=20)] | None = None
    enabled: bool | None = None
    display_name: Annotated[Text, Field(max_length=200)] | None = None


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    subscriber_id: int
    kind: str
    period_key: str
    status: str
    attempts: int
    message_id: str | None
    last_error: str | None
    subject: str | None
    resend_of: int | None
    created_at: datetime
    sent_at: datetime | None


class TopicOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str
    query: str
    normalized: str
    public: bool
    enabled: bool
    followers: int = Field(0, description="How many subscribers follow the topic.")


class TopicIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: Annotated[Text, Field(min_length=1, max_length=200)]
    query: Annotated[Text, Field(min_length=1, max_length=5000)]
    description: Annotated[Text, Field(max_length=5000)] = ""
    public: bool = True
    enabled: bool = True


class TopicPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: Annotated[Text, Field(min_length=1, max_length=200)] | None = None
    query: Annotated[Text, Field(min_length=1, max_length=5000)] | None = None
    description: Annotated[Text, Field(max_length=5000)] | None = None
    public: bool | None = None
    enabled: bool | None = None


class SendNowOut(BaseModel):
    delivery_id: int | None = Field(description="None when no matched paper was waiting.")
    papers: int
    status: str | None = Field(description="sent, retry, failed, skipped or lost; None when "
                               "nothing was sent.")
    message: str


class ScrapeOut(BaseModel):
    source: str
    status: str
    reason: str | None
    entry_count: int
    new: int = Field(description="Papers that raise alerts.")
    updated: int
    baseline: bool
    matched: int = Field(description="Match rows the matching that followed made.")


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str
    action: str
    entity: str
    entity_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class FeedbackRow(BaseModel):
    kind: str = Field(description="rule, topic or recommendation")
    id: int | None
    name: str
    more: int
    less: int
    noise: float | None = Field(description='Share of "not relevant" among the verdicts.')


class FeedbackOut(BaseModel):
    rows: list[FeedbackRow]
    recommendations_shown: int
    recommendations_judged: int
    recommendations_liked: int
    authors: dict[str, int] = Field(description="Muted and followed authors, by action.")


class ResendIn(BaseModel):
    """Which failed deliveries to resend: `ids`, or `failed` true for every failed digest and
    alert that still holds papers (optionally created `since`, of one `kind`)."""

    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[int, Field(ge=1, le=2**31 - 1)]] = Field(default_factory=list,
                                                                 max_length=10_000)
    failed: bool = False
    since: datetime | None = None
    kind: Literal["digest", "alert"] | None = None


class ResentOut(BaseModel):
    """One delivery asked to be resent: the new delivery's id, or null and why not."""

    id: int
    new_id: int | None
    reason: str


class ResendOut(BaseModel):
    resent: int
    refused: int
    deliveries: list[ResentOut]

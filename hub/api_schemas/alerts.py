"""Alerts: rules per kind, channels (email, signed webhooks, Slack, Discord), incidents,
and the outbox's dead letters."""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from pydantic import Field

from hub.api_schemas.common import MAX_INT32, Strict


class RuleIn(Strict):
    enabled: bool = True
    params: dict[str, int] = Field(default_factory=dict, max_length=8,
                                   description="the kind's parameters (e.g. agent_offline: minutes)")
    quiet_s: int = Field(default=600, ge=0, le=7 * 86400,
                         description="after a resolve, the same problem within this time re-opens silently")


class RuleOut(Strict):
    kind: str
    title: str
    enabled: bool
    params: dict[str, int]
    quiet_s: int


class RulesOut(Strict):
    rules: list[RuleOut]


class ChannelIn(Strict):
    kind: Literal["email", "webhook", "slack", "discord"]
    name: str = Field(min_length=1, max_length=100)
    target: str = Field(min_length=3, max_length=500, description="an email address, or the endpoint's https URL")


class ChannelOut(Strict):
    id: uuid.UUID
    kind: str
    name: str
    target: str
    enabled: bool
    created_at: dt.datetime | None


class ChannelCreated(ChannelOut):
    secret: str | None = Field(description="webhooks: the HMAC-SHA256 signing secret, shown once")


class ChannelsOut(Strict):
    channels: list[ChannelOut]


class IncidentOut(Strict):
    id: uuid.UUID
    kind: str
    subject: str
    summary: str
    details: dict[str, Any]
    state: Literal["open", "resolved"]
    observations: int
    opened_at: dt.datetime
    last_seen_at: dt.datetime
    resolved_at: dt.datetime | None


class IncidentsOut(Strict):
    incidents: list[IncidentOut]


class IncidentQuery(Strict):
    state: Literal["open", "resolved"] | None = None
    kind: str | None = Field(default=None, max_length=32)
    limit: int = Field(default=100, ge=1, le=1000)


class MessageOut(Strict):
    id: uuid.UUID
    kind: str
    target: str
    subject: str
    state: Literal["pending", "sent", "dead"]
    attempts: int = Field(ge=0, le=MAX_INT32)
    last_error: str
    created_at: dt.datetime
    next_attempt_at: dt.datetime
    sent_at: dt.datetime | None


class MessagesOut(Strict):
    messages: list[MessageOut]


class OutboxQuery(Strict):
    state: Literal["pending", "sent", "dead"] | None = None
    limit: int = Field(default=100, ge=1, le=1000)

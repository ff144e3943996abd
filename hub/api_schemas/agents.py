"""Agents: join tokens, inventory, labels, protection on/off, credentials."""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from pydantic import Field

from hub.api_schemas.common import Strict
from hub.services.agents import LABEL

# A label as deployments and the protection switch use it.
Label = Annotated[str, Field(pattern=LABEL.pattern)]


class JoinTokenIn(Strict):
    ttl_s: int = Field(default=3600, gt=0, le=3600)
    labels: list[Label] = Field(default_factory=list, max_length=64, description="given to the agent it enrols")
    max_uses: int = Field(default=1, ge=1, le=1000, description="how many servers it may enrol")


class LabelsIn(Strict):
    labels: list[Label] = Field(max_length=64)


class ProtectionIn(Strict):
    label: Label
    enabled: bool


class JoinTokenOut(Strict):
    id: uuid.UUID
    token: str = Field(description="the `bwj_...` token for `bulwark agent enroll` (give it through the "
                                   "environment or stdin); good for `max_uses` servers, shown once")
    expires_at: dt.datetime
    max_uses: int


class JoinTokenListed(Strict):
    id: uuid.UUID
    labels: list[str]
    created_at: dt.datetime | None
    expires_at: dt.datetime
    max_uses: int
    uses: int
    revoked_at: dt.datetime | None
    state: Literal["usable", "used up", "expired", "revoked"]


class JoinTokensOut(Strict):
    join_tokens: list[JoinTokenListed]


class AgentOut(Strict):
    id: uuid.UUID
    hostname: str
    labels: list[str]
    inventory: dict[str, Any] = Field(description="as the agent last reported it (docs/agent-protocol.md)")
    enabled: bool
    revoked: bool
    enrolled_at: dt.datetime | None
    last_seen_at: dt.datetime | None
    deployment_id: uuid.UUID | None = Field(description="the deployment whose Plan it should run")
    applied_digest: str | None = Field(description="digest of the Plan it last reported applied")
    list_revisions: dict[str, int] = Field(description="list id → revision it last reported")
    status: dict[str, Any] = Field(description="its last status report: healthy, mode, errors, drift")


class AgentsOut(Strict):
    agents: list[AgentOut]


class ProtectionOut(Strict):
    agents: list[uuid.UUID] = Field(description="the agents carrying the label")
    enabled: bool


class CredentialOut(Strict):
    id: uuid.UUID
    credential: str = Field(description="the agent's new `bwa_...` credential; the old one stops working")

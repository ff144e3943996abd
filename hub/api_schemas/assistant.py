"""The AI assistant: drafts (checked, never deployed), suggestions from an attack, usage."""
from __future__ import annotations

import uuid

from pydantic import Field

from hub.api_schemas.common import Strict
from hub.api_schemas.policies import Diagnostic

MAX_REQUEST_CHARS = 16_000  # the schema's bound; the configured one (smaller) is checked too


class DraftIn(Strict):
    request: str = Field(min_length=1, max_length=MAX_REQUEST_CHARS, description="what you want, in plain words")
    policy_id: uuid.UUID | None = Field(default=None, description="the running policy to start from and diff against")
    stream: bool = False


class SuggestIn(Strict):
    request: str = Field(default="suggest a rule against this attack", min_length=1, max_length=MAX_REQUEST_CHARS)
    policy_id: uuid.UUID | None = None
    agent_id: uuid.UUID | None = Field(default=None, description="this agent's sources only (its live view)")
    window_s: int = Field(default=900, ge=60, le=86400, description="how far back the top sources go")
    raw_addresses: bool = Field(default=False, description="send single addresses instead of /24 and /48 prefixes")


class UsageOut(Strict):
    enabled: bool
    model: str
    requests_last_hour: int = Field(description="requests in this clock hour, across every hub process")
    requests_per_hour: int
    tokens_last_day: int = Field(description="tokens (input + output) this UTC day, reserved ones included")
    tokens_per_day: int
    hour_resets_at: int = Field(description="unix seconds: when this hour's request count starts again")
    day_resets_at: int = Field(description="unix seconds: when today's (UTC) token count starts again")


class DraftOut(Strict):
    source: str = Field(description="the draft in the rule language (not saved)")
    ok: bool = Field(description="it passed the checker and the lockout guard")
    diagnostics: list[Diagnostic]
    explain: str
    diff: str = Field(description="unified diff from the running policy")
    expects: list[str] = Field(description="expect lines pinning what the draft does")
    repairs: int
    tokens: int
    usage: UsageOut

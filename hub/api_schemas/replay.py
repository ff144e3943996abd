"""Replay: a capture through a candidate policy, compared with the running one."""
from __future__ import annotations

import uuid
from typing import Any

from pydantic import Field

from hub.api_schemas.common import MAX_INT32, Strict


class ReplayQuery(Strict):
    policy_id: uuid.UUID = Field(description="the candidate (a saved draft or library entry)")
    version: int | None = Field(default=None, ge=1, le=MAX_INT32, description="default: its latest")
    running_policy_id: uuid.UUID | None = Field(default=None, description="compare with this policy's latest")
    capture_id: str | None = Field(default=None, max_length=64,
                                   description="an agent's kept capture instead of the body")


class ReplayOut(Strict):
    model_config = {"extra": "allow"}
    policy: str
    frames: int
    rules: list[dict[str, Any]]
    top_dropped_sources: list[dict[str, Any]]
    against: dict[str, Any] | None
    error: dict[str, Any] | None

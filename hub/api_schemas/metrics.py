"""Metrics: per-rule counters by agent, rule and time range; top dropped sources."""
from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field

from hub.api_schemas.common import MAX_INT, Strict


class RangeQuery(Strict):
    start: int | None = Field(default=None, ge=0, le=MAX_INT, description="unix seconds, default: an hour before end")
    end: int | None = Field(default=None, ge=0, le=MAX_INT, description="unix seconds, default: now")


class MetricsQuery(RangeQuery):
    agent_id: uuid.UUID | None = None
    rule: str | None = Field(default=None, max_length=200)
    resolution: Literal["raw", "rollup"] = "raw"


class StreamQuery(Strict):
    max_s: float = Field(default=3600, gt=0, le=86400, description="close the stream after this long")


class PointOut(Strict):
    agent_id: uuid.UUID
    rule: str
    ts: int = Field(description="unix seconds (the bucket's start for rollups)")
    packets: int
    bytes: int


class PointsOut(Strict):
    points: list[PointOut]
    start: int
    end: int


class SourceOut(Strict):
    source: str
    packets: int


class TopSourcesOut(Strict):
    sources: list[SourceOut]

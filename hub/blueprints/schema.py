"""Request/response schema base: unknown fields are refused, not ignored."""
from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()

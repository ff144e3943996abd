"""The audit log (read-only: append-only and hash-chained)."""
from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import Field

from hub.api_schemas.common import MAX_INT, Strict


class AuditQuery(Strict):
    before_seq: int | None = Field(default=None, ge=1, le=MAX_INT, description="page back from here")
    limit: int = Field(default=100, ge=1, le=1000)


class AuditEntryOut(Strict):
    seq: int
    at: dt.datetime
    actor: str = Field(description="user:<email>, token:<id>, agent:<id>, hub or cli")
    action: str
    target: str
    address: str
    details: dict[str, Any]
    hash: str = Field(description="sha256 chaining this entry to the one before")


class AuditOut(Strict):
    entries: list[AuditEntryOut]

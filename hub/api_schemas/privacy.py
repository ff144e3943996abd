"""Privacy: closing an account or a tenant (the erasure it schedules), retention."""
from __future__ import annotations

import datetime as dt
import uuid

from hub.api_schemas.common import Strict


class ErasureOut(Strict):
    id: uuid.UUID
    kind: str
    due_at: dt.datetime
    state: str


class ClosedOut(Strict):
    erasure: ErasureOut
    tenants_closed: list[uuid.UUID]


class RetentionRow(Strict):
    kind: str
    about: str
    setting: str
    seconds: int


class RetentionOut(Strict):
    retention: list[RetentionRow]

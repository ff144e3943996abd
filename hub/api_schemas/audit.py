"""The audit log (read-only: append-only, a keyed hash chain with signed checkpoints)."""
from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import Field

from hub.api_schemas.common import MAX_INT, Strict


ACTION = r"^[a-z0-9_]+(\.[a-z0-9_]*)*$"


class AuditQuery(Strict):
    before_seq: int | None = Field(default=None, ge=1, le=MAX_INT, description="page back from here")
    limit: int = Field(default=100, ge=1, le=1000)
    action: str | None = Field(default=None, max_length=64, pattern=ACTION,
                               description="`policy.save`, or a prefix ending in a dot: `policy.`")
    actor: str | None = Field(default=None, max_length=200, description="exactly, e.g. `user:ops@example.com`")
    since: dt.datetime | None = Field(default=None, description="entries at or after this time")
    until: dt.datetime | None = Field(default=None, description="entries before this time")


class AuditEntryOut(Strict):
    seq: int
    at: dt.datetime
    actor: str = Field(description="user:<email>, token:<id>, agent:<id>, hub or cli")
    action: str
    target: str
    address: str
    details: dict[str, Any]
    hash: str = Field(description="HMAC-SHA256 (a key outside the database) chaining this entry to the one before")


class AuditOut(Strict):
    entries: list[AuditEntryOut]


class AuditProblem(Strict):
    seq: int
    what: str


class Checkpoint(Strict):
    kind: str
    seq: int = Field(description="the newest entry when the checkpoint was signed")
    hash: str
    at: int = Field(description="unix seconds")
    public_key: str = Field(description="the hub's Ed25519 public key (hex): pin it to check offline")
    signature: str = Field(description="Ed25519 over the canonical JSON of the other fields")


class AuditVerifyOut(Strict):
    ok: bool
    checked: int = Field(description="this tenant's entries checked")
    problems: list[AuditProblem] = Field(description="this tenant's edited entries, and the chain's gaps "
                                                     "or truncation (at most 100)")
    checkpoint: Checkpoint | None = Field(description="the last signed checkpoint the chain was held to")

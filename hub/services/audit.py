"""The append-only audit log: every entry carries the sha256 of its predecessor.

Invariants:
- `seq` is dense from 1; entry n's `prev_hash` is entry n-1's `hash` (GENESIS for 1).
- `hash` = sha256(prev_hash || canonical JSON of the entry's own fields).
- Appends are serialised (an in-process lock, plus an advisory transaction lock on
  PostgreSQL so several hub processes still form one chain).
So editing an entry breaks its own hash, and removing one leaves a gap in `seq` and a
`prev_hash` that no longer matches; `verify` reports both.
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import json
import uuid
from typing import Any

from tortoise.transactions import in_transaction

from hub.models import AuditEntry

GENESIS = "0" * 64
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_PG_LOCK_KEY = 0x42574B41  # "BWKA"


def _entry_hash(prev_hash: str, seq: int, tenant_id: uuid.UUID | None, actor: str,
                action: str, target: str, address: str, at: dt.datetime,
                details: dict[str, Any]) -> str:
    body = json.dumps(
        {
            "seq": seq,
            "tenant": str(tenant_id) if tenant_id else None,
            "actor": actor,
            "action": action,
            "target": target,
            "address": address,
            "at_us": (at - _EPOCH) // dt.timedelta(microseconds=1),
            "details": details,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


class AuditLog:
    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    async def append(self, *, actor: str, action: str, tenant_id: uuid.UUID | None = None,
                     target: str = "", address: str = "",
                     details: dict[str, Any] | None = None, conn: Any = None) -> AuditEntry:
        """Append one entry. With `conn` (the caller's open transaction) the entry
        commits or rolls back with the caller's change; the chain stays serialised by
        that transaction (SQLite has one writer; PostgreSQL holds the advisory lock until
        the caller commits), so the in-process lock is not taken: a task holding it
        could be waiting for the very transaction that asks."""
        if conn is not None:
            return await self._append(conn, actor, action, tenant_id, target, address, details or {})
        async with self._lock, in_transaction() as own:
            return await self._append(own, actor, action, tenant_id, target, address, details or {})

    @staticmethod
    async def _append(conn: Any, actor: str, action: str, tenant_id: uuid.UUID | None,
                      target: str, address: str, details: dict[str, Any]) -> AuditEntry:
        at = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        if conn.capabilities.dialect == "postgres":
            await conn.execute_query("SELECT pg_advisory_xact_lock($1)", [_PG_LOCK_KEY])
        last = await AuditEntry.all().using_db(conn).order_by("-seq").first()
        seq = 1 if last is None else last.seq + 1
        prev = GENESIS if last is None else last.hash
        h = _entry_hash(prev, seq, tenant_id, actor, action, target, address, at, details)
        return await AuditEntry.create(
            seq=seq, tenant_id=tenant_id, actor=actor, action=action, target=target,
            address=address, at=at, details=details, prev_hash=prev, hash=h, using_db=conn,
        )


@dataclasses.dataclass(frozen=True)
class Problem:
    seq: int
    what: str

    def __str__(self) -> str:
        return f"entry {self.seq}: {self.what}"


async def verify(batch: int = 1000) -> tuple[int, list[Problem]]:
    """Walk the chain; return (entries checked, problems found)."""
    problems: list[Problem] = []
    prev_hash, expected_seq, checked = GENESIS, 1, 0
    last_seq = 0
    while True:
        rows = await AuditEntry.filter(seq__gt=last_seq).order_by("seq").limit(batch)
        if not rows:
            break
        for e in rows:
            checked += 1
            if e.seq != expected_seq:
                problems.append(Problem(expected_seq, f"missing (next present is {e.seq})"))
            elif e.prev_hash != prev_hash:
                problems.append(Problem(e.seq, "does not link to its predecessor"))
            recomputed = _entry_hash(e.prev_hash, e.seq, e.tenant_id, e.actor, e.action,
                                     e.target, e.address, e.at, e.details)
            if recomputed != e.hash:
                problems.append(Problem(e.seq, "edited (its hash does not match its content)"))
            prev_hash, expected_seq, last_seq = e.hash, e.seq + 1, e.seq
    return checked, problems

"""The append-only audit log: a keyed hash chain with signed checkpoints.

Invariants:
- `seq` is dense from 1; entry n's `prev_hash` is entry n-1's `hash` (GENESIS for 1).
- `hash` = HMAC-SHA256(chain key, prev_hash || canonical JSON of the entry's own fields),
  the key kept outside the database (data_dir/audit_key, 0600): someone who can write the
  database but not read that file cannot recompute hashes after an edit.
- A checkpoint is (seq, hash, at) signed with Ed25519 (data_dir/audit_signing_key); the
  checkpoints are kept in data_dir/audit_checkpoints.jsonl and can be exported and checked
  offline with the public key alone. Deleting the newest rows is caught against the last
  checkpoint (its seq must still be there with its hash).
- Appends are serialised (an in-process lock, plus an advisory transaction lock on
  PostgreSQL so several hub processes still form one chain); `append(using_db=conn)` writes
  the entry in the caller's transaction, so an action and its entry commit together.
So editing an entry breaks its own hash, and removing one leaves a gap in `seq` and a
`prev_hash` that no longer matches; `verify` reports all of these.

Erasure and the chain (format 2, `fmt`): the personal fields (actor, target, address) are
each stored beside a keyed hash of them (`<field>_hash` = HMAC(chain key, name || value)),
and the entry's hash covers those field hashes, not the values. Erasure replaces a value by
its pseudonym, `erased:` and the first 16 hex digits of its field hash (the same person
gets the same pseudonym, so the log still reads as a story); `verify` accepts a value that
matches its field hash or is its pseudonym, so the chain verifies after erasure and an
edit is still caught. Rows of format 1 (written before migration 0012) hashed the values
themselves: `upgrade` verifies the whole chain, rewrites it in format 2 in one transaction,
and signs a checkpoint of the new head with a signed record (`bulwark-audit-rechain/1`)
that names the old head beside the new one, so an old exported checkpoint is still
accounted for.
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import secrets
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from hub.models import AuditEntry
from hub.services.background import job

if TYPE_CHECKING:
    from hub.runtime import Runtime

log = logging.getLogger("bulwark.hub.audit")

GENESIS = "0" * 64
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_PG_LOCK_KEY = 0x42574B41  # "BWKA"
CHECKPOINT_KIND = "bulwark-audit-checkpoint/1"
RECHAIN_KIND = "bulwark-audit-rechain/1"
PERSONAL = ("actor", "target", "address")
PSEUDONYM = "erased:"
FORMAT = 2
CHECKPOINT_TAIL_BYTES = 1 << 16  # a few hundred checkpoints: the newest valid one is among them


def _key_file(path: Path, make: Callable[[], bytes]) -> bytes:
    """The key in `path`, created once when absent: written whole to a private temporary
    file (O_EXCL, 0600) and then linked into place, so no reader sees a half-written key
    and of two processes starting together the loser reads the winner's."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(make())
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        tmp.unlink()
    return path.read_bytes()


@dataclasses.dataclass(frozen=True)
class AuditKeys:
    chain: bytes
    signing: Ed25519PrivateKey

    @classmethod
    def load(cls, data_dir: str | os.PathLike[str]) -> AuditKeys:
        d = Path(data_dir)
        chain = _key_file(d / "audit_key", lambda: secrets.token_bytes(32).hex().encode())
        raw = _key_file(d / "audit_signing_key", lambda: secrets.token_bytes(32).hex().encode())
        return cls(bytes.fromhex(chain.decode().strip()),
                   Ed25519PrivateKey.from_private_bytes(bytes.fromhex(raw.decode().strip())))

    @property
    def public_hex(self) -> str:
        return self.signing.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def field_hash(key: bytes, name: str, value: str) -> str:
    return hmac.new(key, f"{name}\0{value}".encode(), hashlib.sha256).hexdigest()


def pseudonym(hash_: str) -> str:
    return PSEUDONYM + hash_[:16]


def _entry_hash(key: bytes, prev_hash: str, seq: int, tenant_id: uuid.UUID | None, actor: str,
                action: str, target: str, address: str, at: dt.datetime,
                details: dict[str, Any], fmt: int = 1) -> str:
    """Format 1: over the values. Format 2: actor, target and address are their field hashes."""
    body = json.dumps(
        {
            "seq": seq,
            "tenant": str(tenant_id) if tenant_id else None,
            "actor" if fmt == 1 else "actor_h": actor,
            "action": action,
            "target" if fmt == 1 else "target_h": target,
            "address" if fmt == 1 else "address_h": address,
            "at_us": (at - _EPOCH) // dt.timedelta(microseconds=1),
            "details": details,
            **({"fmt": fmt} if fmt != 1 else {}),
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hmac.new(key, (prev_hash + body).encode(), hashlib.sha256).hexdigest()


def _row_hash(key: bytes, e: AuditEntry) -> str:
    """What `e`'s hash must be, from its stored fields (its field hashes in format 2)."""
    if e.fmt == 1:
        return _entry_hash(key, e.prev_hash, e.seq, e.tenant_id, e.actor, e.action, e.target, e.address,
                           e.at, e.details)
    return _entry_hash(key, e.prev_hash, e.seq, e.tenant_id, e.actor_hash, e.action, e.target_hash,
                       e.address_hash, e.at, e.details, fmt=e.fmt)


def _field_problem(key: bytes, e: AuditEntry) -> str | None:
    """In format 2, a personal field must be its field hash's value or its pseudonym."""
    if e.fmt == 1:
        return None
    for name in PERSONAL:
        value, h = getattr(e, name), getattr(e, f"{name}_hash")
        if value != pseudonym(h) and field_hash(key, name, value) != h:
            return f"edited (its {name} does not match its hash)"
    return None


# ---- checkpoints ------------------------------------------------------------------------

def _signed_part(cp: dict[str, Any]) -> bytes:
    return json.dumps({k: cp[k] for k in ("kind", "seq", "hash", "at", "public_key")},
                      sort_keys=True, separators=(",", ":")).encode()


def sign_checkpoint(keys: AuditKeys, seq: int, hash_: str, at: int) -> dict[str, Any]:
    cp = {"kind": CHECKPOINT_KIND, "seq": seq, "hash": hash_, "at": at, "public_key": keys.public_hex}
    return {**cp, "signature": keys.signing.sign(_signed_part(cp)).hex()}


def check_checkpoint(cp: Any, public_key_hex: str) -> str | None:
    """None when `cp` is a checkpoint signed by `public_key_hex`, else why not. Needs no
    database: an exported checkpoint can be checked offline with the pinned public key."""
    try:
        if cp["kind"] != CHECKPOINT_KIND or cp["public_key"] != public_key_hex:
            return "signed by another key" if cp.get("public_key") != public_key_hex else "not a checkpoint"
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex)).verify(
            bytes.fromhex(cp["signature"]), _signed_part(cp))
        if not (isinstance(cp["seq"], int) and isinstance(cp["hash"], str)):
            return "not a checkpoint"
    except InvalidSignature:
        return "its signature does not match"
    except (KeyError, TypeError, ValueError, AttributeError):
        return "not a checkpoint"
    return None


class AuditLog:
    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.data_dir = Path(data_dir)
        self._lock = asyncio.Lock()
        self._keys: AuditKeys | None = None

    @property
    def keys(self) -> AuditKeys:
        if self._keys is None:
            self._keys = AuditKeys.load(self.data_dir)
        return self._keys

    @property
    def checkpoints_path(self) -> Path:
        return self.data_dir / "audit_checkpoints.jsonl"

    async def append(self, *, actor: str, action: str, tenant_id: uuid.UUID | None = None,
                     target: str = "", address: str = "",
                     details: dict[str, Any] | None = None,
                     using_db: BaseDBAsyncClient | None = None) -> AuditEntry:
        """Append an entry; with `using_db`, inside the caller's transaction (the entry
        commits, or not, with the action it records)."""
        if using_db is not None:
            # No in-process lock here: the caller's transaction is open, and SQLite's
            # transaction lock (or PostgreSQL's advisory lock below) serialises the chain.
            return await self._append(using_db, actor, action, tenant_id, target, address, details or {})
        async with self._lock, in_transaction() as conn:
            return await self._append(conn, actor, action, tenant_id, target, address, details or {})

    async def _append(self, conn: BaseDBAsyncClient, actor: str, action: str, tenant_id: uuid.UUID | None,
                      target: str, address: str, details: dict[str, Any]) -> AuditEntry:
        at = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        if conn.capabilities.dialect == "postgres":
            await conn.execute_query("SELECT pg_advisory_xact_lock($1)", [_PG_LOCK_KEY])
        last = await AuditEntry.all().using_db(conn).order_by("-seq").first()
        seq = 1 if last is None else last.seq + 1
        prev = GENESIS if last is None else last.hash
        key = self.keys.chain
        hashes = {f"{name}_hash": field_hash(key, name, value)
                  for name, value in (("actor", actor), ("target", target), ("address", address))}
        h = _entry_hash(key, prev, seq, tenant_id, hashes["actor_hash"], action, hashes["target_hash"],
                        hashes["address_hash"], at, details, fmt=FORMAT)
        return await AuditEntry.create(
            seq=seq, tenant_id=tenant_id, actor=actor, action=action, target=target,
            address=address, at=at, details=details, prev_hash=prev, hash=h, fmt=FORMAT,
            using_db=conn, **hashes,
        )

    def last_checkpoint(self) -> dict[str, Any] | None:
        """The newest valid checkpoint, read from the file's end (it grows by one a run)."""
        try:
            with open(self.checkpoints_path, "rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - CHECKPOINT_TAIL_BYTES))
                tail = f.read().decode(errors="replace")
        except FileNotFoundError:
            return None
        lines = tail.splitlines()
        if size > CHECKPOINT_TAIL_BYTES:
            lines = lines[1:]  # the first may be cut
        for line in reversed(lines):
            try:
                cp = json.loads(line)
            except ValueError:
                continue
            if check_checkpoint(cp, self.keys.public_hex) is None:
                return cp
        return None

    async def checkpoint(self) -> dict[str, Any] | None:
        """Sign the newest entry (when the chain verifies) and keep the checkpoint."""
        checked, problems = await self.verify()
        if problems:
            return None
        last = await AuditEntry.all().order_by("-seq").first()
        if last is None:
            return None
        cp = sign_checkpoint(self.keys, last.seq, last.hash, int(dt.datetime.now(dt.timezone.utc).timestamp()))
        self._keep(cp)
        return cp

    async def verify(self, checkpoint: dict[str, Any] | None = None, batch: int = 1000,
                     tenant_id: uuid.UUID | None = None) -> tuple[int, list[Problem]]:
        """Walk the whole chain against `checkpoint` (default: the last one kept); return
        (entries checked, problems). With `tenant_id`: that tenant's entries are counted
        and their problems named; the chain's own (gaps, truncation) are reported bare.
        A clean walk of the whole chain moves the verified mark to its head."""
        walk = await self._walk(checkpoint, batch, tenant_id, None)
        if walk.good is not None:  # clean: the head; else just before the first problem,
            self._keep_mark(*walk.good)  # so every view from now on shows that problem
        elif walk.problems:
            self.mark_path.unlink(missing_ok=True)
        return walk.checked, walk.problems

    async def verify_since_mark(self, tenant_id: uuid.UUID | None = None,
                                batch: int = 1000) -> tuple[Walk, VerifiedMark | None]:
        """What a view of the log shows: only the entries after the verified mark are
        walked (and the mark's own row is read to see it still holds the hash verified),
        so its cost follows what was appended since, not the chain's length. The mark moves
        up to the last entry before the first problem. An edit to an entry at or before
        the mark is for the full `verify` (the scheduled job, `bulwark hub audit verify`)."""
        mark = self.verified_mark()
        walk = await self._walk(None, batch, tenant_id, mark)
        if walk.good is not None and (mark is None or walk.good[0] > mark.seq):
            mark = self._keep_mark(*walk.good)
        return walk, mark

    async def _walk(self, checkpoint: dict[str, Any] | None, batch: int, tenant_id: uuid.UUID | None,
                    mark: VerifiedMark | None) -> Walk:
        given = checkpoint is not None
        cp = checkpoint if given else self.last_checkpoint()
        walk = Walk()
        if cp is not None:
            why = check_checkpoint(cp, self.keys.public_hex)
            if why is not None:
                walk.problems.append(Problem(0, f"the checkpoint is not valid: {why}"))
                return walk
        key = self.keys.chain
        prev_hash, expected_seq, last_seq, seen_cp = GENESIS, 1, 0, False
        if mark is not None:
            walk.rows_read += 1
            row = await AuditEntry.filter(seq=mark.seq).first().values("hash")
            if row is None or row["hash"] != mark.hash:
                walk.problems.append(Problem(mark.seq, "missing or changed since it was verified"))
                return walk
            prev_hash, expected_seq, last_seq = mark.hash, mark.seq + 1, mark.seq
            seen_cp = cp is not None and cp["seq"] <= mark.seq  # held when the mark passed it
            walk.good = (mark.seq, mark.hash)
        while True:
            rows = await AuditEntry.filter(seq__gt=last_seq).order_by("seq").limit(batch)
            walk.rows_read += len(rows)
            if not rows:
                break
            for e in rows:
                mine = tenant_id is None or e.tenant_id == tenant_id
                walk.checked += mine
                before = len(walk.problems)
                if e.seq != expected_seq:
                    walk.problems.append(Problem(expected_seq, f"missing (next present is {e.seq})"))
                elif e.prev_hash != prev_hash:
                    walk.problems.append(Problem(e.seq, "does not link to its predecessor"))
                # Another tenant's edit is not named to this one, but still holds the mark back.
                hash_holds = _row_hash(key, e) == e.hash
                field = _field_problem(key, e) if hash_holds else None
                edited = not hash_holds or field is not None
                if edited and mine:
                    walk.problems.append(Problem(e.seq, field or "edited (its hash does not match its content)"))
                if cp is not None and e.seq == cp["seq"]:
                    seen_cp = True
                    if e.hash != cp["hash"]:
                        walk.problems.append(Problem(e.seq, "differs from the signed checkpoint"))
                walk.clean = walk.clean and len(walk.problems) == before and not edited
                if walk.clean:
                    walk.good = (e.seq, e.hash)
                prev_hash, expected_seq, last_seq = e.hash, e.seq + 1, e.seq
        if cp is not None and not seen_cp:
            walk.problems.append(Problem(cp["seq"], f"missing: the log ends at {last_seq}, before the signed "
                                                    "checkpoint (entries were deleted)"))
        return walk

    # ---- the verified mark --------------------------------------------------------------

    @property
    def mark_path(self) -> Path:
        return self.data_dir / "audit_verified.json"

    def _mark_mac(self, seq: int, hash_: str) -> str:
        return hmac.new(self.keys.chain, f"verified\0{seq}\0{hash_}".encode(), hashlib.sha256).hexdigest()

    def verified_mark(self) -> VerifiedMark | None:
        """The last entry a walk found sound (kept beside the keys, outside the database,
        and keyed with the chain key: a forged mark would skip verification)."""
        try:
            raw = json.loads(self.mark_path.read_text())
            mark = VerifiedMark(int(raw["seq"]), str(raw["hash"]), int(raw["at"]))
            if hmac.compare_digest(str(raw["mac"]), self._mark_mac(mark.seq, mark.hash)):
                return mark
            log.error("audit log: the verified mark's MAC does not match; verifying from the start")
        except FileNotFoundError:
            pass
        except (ValueError, KeyError, TypeError):
            log.error("audit log: the verified mark is unreadable; verifying from the start")
        return None

    def _keep_mark(self, seq: int, hash_: str) -> VerifiedMark:
        mark = VerifiedMark(seq, hash_, int(dt.datetime.now(dt.timezone.utc).timestamp()))
        self.mark_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.mark_path.with_name(f".{self.mark_path.name}.{secrets.token_hex(8)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({**dataclasses.asdict(mark), "mac": self._mark_mac(seq, hash_)}, f)
        os.replace(tmp, self.mark_path)  # readers see the old mark or the new one, whole
        return mark

    # ---- erasure ------------------------------------------------------------------------

    async def pseudonymise(self, rows: Any, fields: tuple[str, ...] = PERSONAL) -> int:
        """Replace `fields` of the entries `rows` (a queryset) by their pseudonyms; the
        chain still verifies. Idempotent. Rows of format 1 are upgraded first."""
        await self.upgrade()
        changed = 0
        for name in fields:
            for pk, value, h in await rows.filter(fmt__gte=2).values_list("id", name, f"{name}_hash"):
                if value != pseudonym(h) and value != "":
                    changed += await AuditEntry.filter(id=pk, **{name: value}).update(**{name: pseudonym(h)})
        return changed

    async def upgrade(self) -> int:
        """Rewrite a chain holding format-1 rows in format 2 (see the module's docstring);
        the number of rows rewritten, 0 when there were none. Refuses (Conflict) a chain
        that does not verify: it would launder an edit."""
        from hub.errors import Conflict

        if not await AuditEntry.filter(fmt=1).exists():
            return 0
        async with self._lock, in_transaction() as conn:
            if conn.capabilities.dialect == "postgres":
                await conn.execute_query("SELECT pg_advisory_xact_lock($1)", [_PG_LOCK_KEY])
            if not await AuditEntry.filter(fmt=1).using_db(conn).exists():
                return 0
            _, problems = await self.verify()
            if problems:
                raise Conflict(f"the audit log does not verify ({problems[0]}): not rewriting it")
            old_head = await AuditEntry.all().using_db(conn).order_by("-seq").first()
            key, prev, last_seq, n = self.keys.chain, GENESIS, 0, 0
            while True:
                rows = await AuditEntry.filter(seq__gt=last_seq).using_db(conn).order_by("seq").limit(1000)
                if not rows:
                    break
                for e in rows:
                    e.fmt, e.prev_hash = FORMAT, prev
                    for name in PERSONAL:
                        value = getattr(e, name)
                        setattr(e, f"{name}_hash", field_hash(key, name, value))
                    e.hash = _row_hash(key, e)
                    await e.save(using_db=conn, update_fields=["fmt", "prev_hash", "hash", "actor_hash",
                                                               "target_hash", "address_hash"])
                    prev, last_seq, n = e.hash, e.seq, n + 1
        assert old_head is not None
        now_s = int(dt.datetime.now(dt.timezone.utc).timestamp())
        record = {"kind": RECHAIN_KIND, "seq": old_head.seq, "old_hash": old_head.hash, "new_hash": prev,
                  "at": now_s, "public_key": self.keys.public_hex}
        body = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
        self._keep({**record, "signature": self.keys.signing.sign(body).hex()})
        # The new head, signed now: the chain was verified just before it was rewritten.
        self._keep(sign_checkpoint(self.keys, last_seq, prev, now_s))
        log.warning("audit log: %d entries rewritten in format %d (head %d: %s -> %s)", n, FORMAT,
                    old_head.seq, old_head.hash, prev)
        return n

    def _keep(self, record: dict[str, Any]) -> None:
        self.checkpoints_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.checkpoints_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")


@dataclasses.dataclass(frozen=True)
class VerifiedMark:
    seq: int
    hash: str
    at: int  # unix seconds, when it was set


@dataclasses.dataclass
class Walk:
    """One walk of the chain: `good` is the last entry before the first problem."""

    checked: int = 0
    problems: list[Problem] = dataclasses.field(default_factory=list)
    good: tuple[int, str] | None = None
    clean: bool = True
    rows_read: int = 0


@dataclasses.dataclass(frozen=True)
class Problem:
    seq: int
    what: str

    def __str__(self) -> str:
        return f"entry {self.seq}: {self.what}"


@job("audit-verify", every_s=3600)
async def _verify_job(rt: Runtime) -> None:
    """Verify the chain on a schedule and, when it holds, sign a new checkpoint."""
    checked, problems = await rt.audit.verify()
    for problem in problems[:100]:
        log.error("audit log: %s", problem)
    if not problems:
        await rt.audit.checkpoint()

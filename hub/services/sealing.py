"""Secrets at rest: envelope encryption, the key-encryption key (KEK) outside the database.

Invariants:
- A sealed value is `bwenc1:<kek id>:<wrapped data key>:<nonce+ciphertext>` (base64url):
  each value has its own random 256-bit data key (AES-256-GCM), and that key is wrapped
  (AES-256-GCM) by the KEK the id names. Both layers take the column's name as associated
  data, so a sealed value copied into another column does not open.
- The keyring is a JSON file outside the database (`keyring_file`, default
  data_dir/secrets_keyring, 0600): every KEK still referenced, and which one is primary.
  New values are sealed under the primary. A process re-reads the file when it changes, so
  a rotation made by the CLI reaches running hubs.
- Rotation adds a KEK and makes it primary, then rewraps each row's data key (the value's
  own ciphertext is untouched), a batch per transaction: a crash leaves some rows under the
  old KEK, which stays in the keyring, and a rerun (`--resume`) finishes. A KEK is retired
  (dropped from the keyring) only when no row names it.
- A value without the prefix is plaintext from before sealing (migration 0012 could not
  seal: a migration sees the database, not the keyring): `open` passes it through and
  `seal_legacy`, run at start, seals each such row once.
"""
from __future__ import annotations

import base64
import dataclasses
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from tortoise.models import Model
from tortoise.transactions import in_transaction

from hub import files
from hub.errors import InvalidInput, SecretUnreadable

PREFIX = "bwenc1"
NONCE = 12


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def is_sealed(value: str | None) -> bool:
    return bool(value) and value.startswith(PREFIX + ":")  # type: ignore[union-attr]


def kek_of(value: str) -> str:
    return value.split(":", 2)[1]


def _gcm(key: bytes, data: bytes, aad: bytes) -> bytes:
    nonce = secrets.token_bytes(NONCE)
    return nonce + AESGCM(key).encrypt(nonce, data, aad)


def _ungcm(key: bytes, blob: bytes, aad: bytes) -> bytes:
    return AESGCM(key).decrypt(blob[:NONCE], blob[NONCE:], aad)


@dataclasses.dataclass
class Keyring:
    primary: str
    keys: dict[str, bytes]

    @classmethod
    def new(cls) -> Keyring:
        kid = secrets.token_hex(4)
        return cls(kid, {kid: AESGCM.generate_key(bit_length=256)})

    @classmethod
    def parse(cls, text: str) -> Keyring:
        doc = json.loads(text)
        keys = {kid: bytes.fromhex(hexkey) for kid, hexkey in doc["keys"].items()}
        if doc["primary"] not in keys or any(len(k) != 32 for k in keys.values()):
            raise ValueError("the primary key is missing or a key is not 256 bits")
        return cls(doc["primary"], keys)

    def dump(self) -> str:
        return json.dumps({"primary": self.primary, "keys": {k: v.hex() for k, v in self.keys.items()}},
                          indent=2, sort_keys=True) + "\n"


class Sealer:
    """Seals and opens the hub's stored secrets with the keyring in `path`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._ring: Keyring | None = None
        self._stamp: tuple[int, int] | None = None

    @property
    def ring(self) -> Keyring:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_ino)
        except FileNotFoundError:
            stamp = None
        if self._ring is None or stamp != self._stamp:
            if stamp is None:
                self._write(Keyring.new(), exclusive=True)
            try:
                self._ring = Keyring.parse(self.path.read_text())
            except (ValueError, KeyError, TypeError) as exc:
                raise SecretUnreadable(f"the keyring {self.path} is not valid: {exc}") from None
            st = self.path.stat()
            self._stamp = (st.st_mtime_ns, st.st_ino)
        return self._ring

    def _write(self, ring: Keyring, *, exclusive: bool = False) -> None:
        """Whole or not at all (a private temporary file renamed, or linked when `exclusive`
        so that of two processes making the first keyring the first one wins)."""
        files.private_dir(self.path.parent)
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(6)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(ring.dump())
                f.flush()
                os.fsync(f.fileno())
            if exclusive:
                try:
                    os.link(tmp, self.path)
                except FileExistsError:
                    pass
            else:
                os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)

    def seal(self, column: str, plaintext: str) -> str:
        ring = self.ring
        aad = column.encode()
        data_key = AESGCM.generate_key(bit_length=256)
        wrapped = _gcm(ring.keys[ring.primary], data_key, aad)
        return ":".join((PREFIX, ring.primary, _b64(wrapped), _b64(_gcm(data_key, plaintext.encode(), aad))))

    def _data_key(self, column: str, value: str) -> tuple[str, bytes, str]:
        try:
            _, kid, wrapped, body = value.split(":")
            key = self.ring.keys.get(kid)
            if key is None:
                raise SecretUnreadable(f"{column}: sealed under key {kid!r}, which the keyring "
                                       f"{self.path} does not hold")
            return kid, _ungcm(key, _unb64(wrapped), column.encode()), body
        except (ValueError, InvalidTag) as exc:
            raise SecretUnreadable(f"{column}: a sealed value does not open ({type(exc).__name__})") from None

    def open(self, column: str, value: str | None) -> str | None:
        """The plaintext of a sealed value (a legacy plaintext value as it is). Raises SecretUnreadable."""
        if not is_sealed(value):
            return value
        assert value is not None
        _, data_key, body = self._data_key(column, value)
        try:
            return _ungcm(data_key, _unb64(body), column.encode()).decode()
        except (ValueError, InvalidTag):
            raise SecretUnreadable(f"{column}: a sealed value does not open (altered)") from None

    def rewrap(self, column: str, value: str) -> str:
        """The same value, its data key wrapped by the primary KEK (the body unchanged)."""
        _, data_key, body = self._data_key(column, value)
        ring = self.ring
        wrapped = _gcm(ring.keys[ring.primary], data_key, column.encode())
        return ":".join((PREFIX, ring.primary, _b64(wrapped), body))

    def add_primary(self) -> str:
        """A new KEK, made primary (the others stay, to open what they wrapped)."""
        ring = self.ring
        new = Keyring.new()
        self._write(Keyring(new.primary, {**ring.keys, **new.keys}))
        return new.primary

    def retire(self, referenced: set[str]) -> list[str]:
        ring = self.ring
        gone = sorted(k for k in ring.keys if k != ring.primary and k not in referenced)
        if gone:
            self._write(Keyring(ring.primary, {k: v for k, v in ring.keys.items() if k not in gone}))
        return gone


# ---- the sealed columns, and the sweeps over them ---------------------------------------

def sealed_columns() -> Iterator[tuple[type[Model], str]]:
    """Every column holding a sealed secret (the Stripe and Anthropic keys are settings,
    never stored in the database; an empty value is no secret and stays empty)."""
    from hub.models import AlertChannel, User

    yield User, "totp_secret"
    yield User, "totp_pending_secret"
    yield AlertChannel, "secret"
    yield AlertChannel, "url"  # webhook URLs carry the endpoint's token (Slack, Discord)


def column_name(model: type[Model], field: str) -> str:
    return f"{model._meta.db_table}.{field}"


async def _sweep(sealer: Sealer, change: Any, wanted: Any, batch: int, limit: int | None) -> int:
    """Rewrite, a batch per transaction, every row whose value `wanted` picks; `limit`
    stops after that many rows (tests use it to stand for a crash)."""
    done = 0
    for model, field in sealed_columns():
        column = column_name(model, field)
        last = None
        while True:
            pk_name = model._meta.pk_attr
            qs = model.filter(**{f"{field}__isnull": False}).exclude(**{field: ""})
            if last is not None:
                qs = qs.filter(**{f"{pk_name}__gt": last})
            rows = await qs.order_by(pk_name).limit(batch).values_list(pk_name, field)
            if not rows:
                break
            last = rows[-1][0]
            async with in_transaction() as conn:
                for pk, value in rows:
                    if not wanted(value):
                        continue
                    if limit is not None and done >= limit:
                        return done
                    # Only if unchanged since read: a concurrent write wins.
                    await model.filter(**{pk_name: pk, field: value}).using_db(conn).update(
                        **{field: change(column, value)})
                    done += 1
    return done


async def seal_legacy(sealer: Sealer, batch: int = 500) -> int:
    """Seal every plaintext secret left from before sealing; the number sealed."""
    return await _sweep(sealer, sealer.seal, lambda v: not is_sealed(v), batch, None)


async def rewrap_all(sealer: Sealer, batch: int = 500, limit: int | None = None) -> int:
    """Rewrap every value not under the primary KEK; the number rewrapped."""
    primary = sealer.ring.primary
    return await _sweep(sealer, sealer.rewrap, lambda v: is_sealed(v) and kek_of(v) != primary, batch, limit)


async def keys_in_use() -> set[str]:
    used: set[str] = set()
    for model, field in sealed_columns():
        async for value in _values(model, field):
            if is_sealed(value):
                used.add(kek_of(value))
    return used


async def _values(model: type[Model], field: str, batch: int = 1000) -> Any:
    last, pk_name = None, model._meta.pk_attr
    while True:
        qs = model.filter(**{f"{field}__isnull": False})
        if last is not None:
            qs = qs.filter(**{f"{pk_name}__gt": last})
        rows = await qs.order_by(pk_name).limit(batch).values_list(pk_name, field)
        for _, value in rows:
            yield value
        if len(rows) < batch:
            return
        last = rows[-1][0]


async def rotate(sealer: Sealer, *, resume: bool = False, retire: bool = False,
                 limit: int | None = None) -> dict[str, Any]:
    """`bulwark hub rotate-key`: a new primary KEK (unless `resume`), every data key
    rewrapped under it, then (with `retire`) the KEKs no row names dropped."""
    new = None if resume else sealer.add_primary()
    rewrapped = await rewrap_all(sealer, limit=limit)
    out: dict[str, Any] = {"primary": sealer.ring.primary, "new": new, "rewrapped": rewrapped,
                           "pending": await _pending(sealer), "retired": []}
    if retire:
        if out["pending"]:
            raise InvalidInput(f"{out['pending']} value(s) are still under an older key: "
                               "run rotate-key --resume first")
        out["retired"] = sealer.retire(await keys_in_use())
    return out


async def _pending(sealer: Sealer) -> int:
    primary = sealer.ring.primary
    n = 0
    for model, field in sealed_columns():
        async for value in _values(model, field):
            n += is_sealed(value) and kek_of(value) != primary
    return n

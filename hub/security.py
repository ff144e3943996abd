"""Secrets: password hashing (argon2id), random tokens and their stored digests.

Passwords are low-entropy, so they get argon2id with OWASP's parameters (configurable
so tests can be fast). Tokens we mint ourselves carry 256 bits of randomness, so a plain
sha256 is the right stored form: it cannot be brute-forced and lookups stay O(1).
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import uuid

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.low_level import Type

from hub.config import HubConfig


class Passwords:
    def __init__(self, config: HubConfig) -> None:
        self._hasher = PasswordHasher(
            time_cost=config.argon2_time_cost,
            memory_cost=config.argon2_memory_kib,
            parallelism=config.argon2_parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        # Verified against when the account does not exist, so timing does not tell.
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        def check() -> bool:
            try:
                return self._hasher.verify(stored or self._dummy, password) and stored is not None
            except (VerificationError, InvalidHashError):
                return False

        return await asyncio.to_thread(check)

    def needs_rehash(self, stored: str) -> bool:
        return self._hasher.check_needs_rehash(stored)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def make_credential(prefix: str, object_id: uuid.UUID) -> tuple[str, str]:
    """A bearer credential `<prefix>_<id hex>_<secret>` and the digest to store.

    The id makes the lookup a primary-key read; the digest compare is constant time.
    """
    secret = new_secret()
    return f"{prefix}_{object_id.hex}_{secret}", digest(secret)


def split_credential(prefix: str, credential: str) -> tuple[uuid.UUID, str] | None:
    parts = credential.split("_", 2)
    if len(parts) != 3 or parts[0] != prefix:
        return None
    try:
        object_id = uuid.UUID(hex=parts[1])
    except ValueError:
        return None
    return object_id, parts[2]

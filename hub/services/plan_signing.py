"""The hub's Plan signing key (Ed25519) and the signatures it puts on desired states.

The key is made once, on first use, in `plan_signing_key_file` (default
data_dir/plan_signing_key, PKCS#8 PEM, mode 0600). Workers starting together must not
each make one: the key is written whole to a file of this process's own (O_EXCL), then
hard-linked to the final name, which fails if another process got there first; then
every process reads the one that won. A reader never sees a half-written key.

Agents pin the public key at enrolment (`enroll` answers it), so a hub whose key changes
must re-enrol its agents: the key file is as precious as the database.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

from bulwark import plan_signature
from hub.config import HubConfig
from hub.errors import ConfigError

SIGNATURES_CACHED = 4096  # (agent, deployment, digest, mode): one per agent and rollout


def key_path(config: HubConfig) -> Path:
    return Path(config.plan_signing_key_file or Path(config.data_dir) / "plan_signing_key")


def _create_once(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another worker made it first: use theirs
    finally:
        tmp.unlink(missing_ok=True)


def load_or_create(config: HubConfig):
    """The private key, made on first use. Raises ConfigError if the file is not a key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = key_path(config)
    if not path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        _create_once(path, pem)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"plan signing key {path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"plan signing key {path}: not an Ed25519 key")
    return key


class PlanSigner:
    """Signs (agent, deployment, digest, mode) for desired-state documents; the key is
    loaded on first use, so a hub that serves no agent never touches the file."""

    def __init__(self, config: HubConfig) -> None:
        self.config = config
        self.sign = functools.lru_cache(maxsize=SIGNATURES_CACHED)(self._sign)

    @functools.cached_property
    def _key(self):
        return load_or_create(self.config)

    @functools.cached_property
    def public_key(self) -> str:
        """base64 of the raw 32-byte public key, as agents pin it."""
        from cryptography.hazmat.primitives import serialization

        return plan_signature.encode(self._key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw))

    def _sign(self, agent_id: str, deployment_id: str, digest: str, mode: str) -> str:
        return plan_signature.encode(self._key.sign(plan_signature.message(agent_id, deployment_id, digest, mode)))

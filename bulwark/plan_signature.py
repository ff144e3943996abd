"""What the hub signs over a Plan it sends an agent, shared by both ends (Ed25519).

The signed message binds the Plan's digest to the deployment that names it, the agent
it is for and the mode it runs in, so a signature cannot be replayed to another agent,
to another deployment (a rollback is a new deployment) or from monitor to enforce. List
contents are not covered: they change by the second and are judged by the agent's
lockout guard as before (docs/agent-protocol.md, "Signed Plans").

Keys and signatures travel as base64 of the raw Ed25519 bytes (32 and 64). `cryptography`
is imported where used, so a standalone agent never loads it.
"""
from __future__ import annotations

import base64
import binascii

VERSION = "bulwark-plan-signature/1"
MODES = ("enforce", "monitor")


class SignatureInvalid(ValueError):
    """The signature, or the key it is checked with, does not hold."""


def message(agent_id: str, deployment_id: str, digest: str, mode: str) -> bytes:
    """The bytes signed. Every field is a UUID, hex or a mode name: no field can hold the
    separator, so two different tuples never give the same message."""
    fields = (agent_id, deployment_id, digest, mode)
    if mode not in MODES or any(not f or "\n" in f for f in fields):
        raise SignatureInvalid(f"cannot sign {fields!r}")
    return "\n".join((VERSION, *fields)).encode()


def decode(text: object, size: int, what: str) -> bytes:
    if not isinstance(text, str) or len(text) > 200:
        raise SignatureInvalid(f"{what}: expected base64 text")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureInvalid(f"{what}: not base64") from None
    if len(raw) != size:
        raise SignatureInvalid(f"{what}: expected {size} bytes, got {len(raw)}")
    return raw


def encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def verify(public_key: str, signature: object, agent_id: str, deployment_id: str, digest: str,
           mode: str) -> None:
    """Raises SignatureInvalid unless `signature` is the hub's over these fields."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = Ed25519PublicKey.from_public_bytes(decode(public_key, 32, "the pinned hub key"))
    try:
        key.verify(decode(signature, 64, "signature"), message(agent_id, deployment_id, digest, mode))
    except InvalidSignature:
        raise SignatureInvalid("the signature does not match") from None

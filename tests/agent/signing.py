"""A hub Plan key for tests that hand the agent hub states without a hub: pin it, sign with it."""
from __future__ import annotations

import dataclasses

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent import trust
from agent.config import AgentConfig
from agent.state import Desired
from bulwark import plan_signature

AGENT_ID = "0b8f0d2e-8c4e-4a55-9a51-5f3c1a2b3c4d"
HUB_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


def public(key: Ed25519PrivateKey = HUB_KEY) -> str:
    return plan_signature.encode(key.public_key().public_bytes(serialization.Encoding.Raw,
                                                               serialization.PublicFormat.Raw))


def pin(config: AgentConfig, key: Ed25519PrivateKey = HUB_KEY) -> None:
    trust.save_pin(config, AGENT_ID, public(key))


def signature(desired: Desired, *, key: Ed25519PrivateKey = HUB_KEY, agent_id: str = AGENT_ID,
              deployment_id: str | None = None, mode: str | None = None) -> str:
    msg = plan_signature.message(agent_id, deployment_id or desired.deployment_id, desired.digest,
                                 mode or desired.mode)
    return plan_signature.encode(key.sign(msg))


def signed(desired: Desired, **kw) -> Desired:
    return dataclasses.replace(desired, signature=signature(desired, **kw))

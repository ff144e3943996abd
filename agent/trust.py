"""The agent trusts a hub Plan only with the hub's signature, checked against the key
pinned at enrolment (`hub_key.json` in the state directory, next to the credential).

The signature covers the Plan's digest, the deployment, this agent and the mode
(`bulwark.plan_signature`): one made for another agent or another deployment, or for
monitor when enforce is asked, is refused like a missing one. A refused Plan is never
applied; the reconciler reports it (failed_digest) and keeps what it enforces.
"""
from __future__ import annotations

import json

from agent.config import AgentConfig
from agent.errors import PolicyRejected, StateError
from agent.state import Desired, read_json, write_atomic
from bulwark import plan_signature

PIN_FILE = "hub_key.json"


class PlanUntrusted(PolicyRejected):
    """A hub Plan without a valid signature of the pinned hub key."""


def save_pin(config: AgentConfig, agent_id: str, public_key: object) -> None:
    """Pin the hub's Plan key (from the enrolment answer). Raises StateError if it is not one."""
    try:
        plan_signature.decode(public_key, 32, "plan_public_key")
    except plan_signature.SignatureInvalid as exc:
        raise StateError(f"the hub's enrolment answer: {exc}") from None
    write_atomic(config.state_dir / PIN_FILE,
                 json.dumps({"agent_id": agent_id, "plan_public_key": public_key}).encode(), mode=0o600)


def load_pin(config: AgentConfig) -> dict[str, str] | None:
    doc = read_json(config.state_dir / PIN_FILE)
    if doc is not None and not (isinstance(doc, dict) and {"agent_id", "plan_public_key"} <= set(doc)):
        raise StateError(f"{config.state_dir / PIN_FILE} is not a pinned hub key")
    return doc


def check(desired: Desired, config: AgentConfig) -> None:
    """Raises PlanUntrusted unless `desired` (a hub state with a Plan) carries the pinned
    hub's signature over its digest, deployment, this agent and its mode."""
    what = f"Plan {(desired.digest or '')[:12]}"
    try:
        pin = load_pin(config)
    except StateError as exc:
        raise PlanUntrusted(f"{what} refused: {exc}") from None
    if pin is None:
        raise PlanUntrusted(f"{what} refused: no hub key is pinned in {config.state_dir}; enrol again")
    if desired.signature is None:
        raise PlanUntrusted(f"{what} refused: the hub sent it unsigned")
    try:
        plan_signature.verify(pin["plan_public_key"], desired.signature, pin["agent_id"],
                              desired.deployment_id or "", desired.digest or "", desired.mode)
    except plan_signature.SignatureInvalid as exc:
        raise PlanUntrusted(f"{what} refused: not signed by the pinned hub key ({exc})") from None

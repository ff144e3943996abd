"""An agent's desired state, and waiting until it changes.

The document (see docs/agent-protocol.md):
    {"agent_id", "etag", "mode": "enforce"|"monitor"|"deactivate"|"none",
     "deployment": {"id", "digest"} | null, "plan": <Plan JSON> (only when the agent's
     applied digest differs), "lists": [per-list "current" | "delta" | "snapshot"]}

`etag` fingerprints everything that would change the document, so an agent that sends
back the etag it holds waits until there is something new.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

from hub.errors import Unauthenticated
from hub.models import Agent, Deployment, IpList, Tenant
from hub.runtime import Runtime
from hub.services import lists
from hub.services.agents import agent_channel, tenant_channel


async def _facts(agent: Agent) -> tuple[str, Deployment | None, list[IpList]]:
    tenant = await Tenant.get(id=agent.tenant_id)
    deployment = await Deployment.get_or_none(id=agent.deployment_id) if agent.deployment_id else None
    if not agent.enabled or tenant.suspended or agent.revoked_at is not None:
        mode = "deactivate"
    elif deployment is None:
        mode = "none"
    else:
        mode = "monitor" if deployment.monitor else "enforce"
    ip_lists = await IpList.filter(tenant_id=agent.tenant_id).order_by("name")
    return mode, deployment, ip_lists


def _etag(mode: str, deployment: Deployment | None, ip_lists: list[IpList]) -> str:
    basis = json.dumps([mode, str(deployment.id) if deployment else None,
                        [(str(x.id), x.revision) for x in ip_lists]])
    return hashlib.sha256(basis.encode()).hexdigest()[:32]


async def desired_state(agent: Agent, applied_digest: str | None, known_lists: dict[str, int],
                        facts: tuple[str, Deployment | None, list[IpList]] | None = None) -> dict[str, Any]:
    mode, deployment, ip_lists = facts or await _facts(agent)
    doc: dict[str, Any] = {
        "agent_id": str(agent.id),
        "etag": _etag(mode, deployment, ip_lists),
        "mode": mode,
        "deployment": None if deployment is None else {"id": str(deployment.id), "digest": deployment.plan_digest},
        "lists": [await lists.update_for(x, known_lists.get(str(x.id))) for x in ip_lists],
    }
    if deployment is not None and mode != "deactivate" and applied_digest != deployment.plan_digest:
        doc["plan"] = json.loads(deployment.plan_json)
    return doc


async def wait_for_change(rt: Runtime, agent: Agent, etag: str | None, applied_digest: str | None,
                          known_lists: dict[str, int], wait_s: float) -> dict[str, Any] | None:
    """The desired state once it differs from `etag`, or None after `wait_s` seconds.

    Subscribes before reading, so a change between the read and the wait is not lost.
    Raises Unauthenticated if the agent is revoked or its credential rotated meanwhile.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    credential_hash = agent.credential_hash
    async with rt.notifier.subscribe([agent_channel(agent.id), tenant_channel(agent.tenant_id)]) as sub:
        while True:
            facts = await _facts(agent)
            if etag is None or _etag(*facts) != etag:
                return await desired_state(agent, applied_digest, known_lists, facts)
            if not await sub.wait(max(0.0, deadline - loop.time())):
                return None
            agent = await Agent.get(id=agent.id)
            if agent.revoked_at is not None or agent.credential_hash != credential_hash:
                raise Unauthenticated("this agent's credential is no longer valid")

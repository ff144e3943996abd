"""Agents: join tokens, enrolment, credentials, inventory, labels, enable/disable.

Invariants:
- A join token is single use (claimed with a conditional UPDATE), lives at most
  `join_token_max_ttl_s`, and binds the agent to the token's tenant.
- Only the sha256 of an agent credential is stored; rotate replaces it at once, so
  the old credential stops working on the next request; a revoked agent is refused.
- Disabling keeps the agent's deployment pointer and makes its desired state say
  "deactivate"; enabling therefore restores the last deployment.
"""
from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

from hub.errors import Conflict, InvalidInput, Unauthenticated
from hub.models import Agent, JoinToken, Tenant
from hub.runtime import Runtime
from hub.security import digest, make_credential, same, split_credential
from hub.services.accounts import now
from hub.services.scope import TenantScope

JOIN_PREFIX = "bwj"
AGENT_PREFIX = "bwa"
LABEL = re.compile(r"^[a-z0-9][a-z0-9._:/-]{0,62}$")
INVENTORY_KEYS = {"hostname", "interfaces", "kernel", "xdp_mode", "agent_version", "os"}


def check_labels(labels: list[str]) -> list[str]:
    bad = [label for label in labels if not LABEL.match(label)]
    if bad:
        raise InvalidInput(f"bad label(s): {', '.join(bad[:5])}; use a-z, 0-9 and . _ : / -")
    return sorted(set(labels))


def agent_channel(agent_id: uuid.UUID) -> str:
    return f"agent:{agent_id}"


def tenant_channel(tenant_id: uuid.UUID) -> str:
    return f"tenant:{tenant_id}"


async def create_join_token(rt: Runtime, scope: TenantScope, ttl_s: int, labels: list[str]) -> tuple[JoinToken, str]:
    scope.require("write")
    if not 0 < ttl_s <= rt.config.join_token_max_ttl_s:
        raise InvalidInput(f"ttl_s must be between 1 and {rt.config.join_token_max_ttl_s}")
    token_id = uuid.uuid4()
    credential, secret_hash = make_credential(JOIN_PREFIX, token_id)
    token = await JoinToken.create(id=token_id, tenant_id=scope.tenant_id, secret_hash=secret_hash,
                                   labels=check_labels(labels), expires_at=now() + dt.timedelta(seconds=ttl_s))
    await rt.audit.append(actor=scope.actor, action="agent.join_token", tenant_id=scope.tenant_id,
                          target=str(token.id), address=scope.address, details={"ttl_s": ttl_s})
    return token, credential


def clean_inventory(inventory: dict[str, Any]) -> dict[str, Any]:
    unknown = set(inventory) - INVENTORY_KEYS
    if unknown:
        raise InvalidInput(f"unknown inventory field(s): {', '.join(sorted(unknown))}")
    xdp = inventory.get("xdp_mode")
    if xdp is not None and xdp not in {"native", "generic", "none"}:
        raise InvalidInput("xdp_mode must be native, generic or none")
    return inventory


async def enroll(rt: Runtime, join_credential: str, inventory: dict[str, Any], address: str) -> tuple[Agent, str]:
    """Claim a join token and create the agent. Raises Unauthenticated for any bad token
    (unknown, used, expired) without saying which."""
    parts = split_credential(JOIN_PREFIX, join_credential)
    if parts is None:
        raise Unauthenticated("bad join token")
    token = await JoinToken.get_or_none(id=parts[0])
    if token is None or not same(token.secret_hash, digest(parts[1])) or token.expires_at <= now():
        raise Unauthenticated("bad join token")
    inventory = clean_inventory(inventory)
    agent_id = uuid.uuid4()
    claimed = await JoinToken.filter(id=token.id, used_at__isnull=True).update(used_at=now(), used_by=agent_id)
    if not claimed:
        raise Unauthenticated("bad join token")
    credential, credential_hash = make_credential(AGENT_PREFIX, agent_id)
    agent = await Agent.create(
        id=agent_id, tenant_id=token.tenant_id, credential_hash=credential_hash,
        hostname=str(inventory.get("hostname", ""))[:255], labels=token.labels, inventory=inventory,
        last_seen_at=now(),
    )
    await rt.audit.append(actor=f"agent:{agent.id}", action="agent.enroll", tenant_id=agent.tenant_id,
                          target=str(agent.id), address=address, details={"hostname": agent.hostname})
    return agent, credential


async def authenticate_agent(credential: str) -> Agent:
    parts = split_credential(AGENT_PREFIX, credential)
    if parts is None:
        raise Unauthenticated("bad agent credential")
    agent = await Agent.get_or_none(id=parts[0])
    if agent is None or not same(agent.credential_hash, digest(parts[1])):
        raise Unauthenticated("bad agent credential")
    if agent.revoked_at is not None:
        raise Unauthenticated("this agent was revoked")
    return agent


async def rotate(rt: Runtime, scope: TenantScope, agent: Agent) -> str:
    scope.require("admin")
    if agent.revoked_at is not None:
        raise Conflict("a revoked agent cannot get a new credential")
    credential, agent.credential_hash = make_credential(AGENT_PREFIX, agent.id)
    await agent.save(update_fields=["credential_hash"])
    await rt.notifier.publish(agent_channel(agent.id))  # end its waiting request now
    await rt.audit.append(actor=scope.actor, action="agent.rotate", tenant_id=scope.tenant_id,
                          target=str(agent.id), address=scope.address)
    return credential


async def revoke(rt: Runtime, scope: TenantScope, agent: Agent) -> None:
    scope.require("admin")
    if agent.revoked_at is None:
        agent.revoked_at = now()
        await agent.save(update_fields=["revoked_at"])
        await rt.notifier.publish(agent_channel(agent.id))
        await rt.audit.append(actor=scope.actor, action="agent.revoke", tenant_id=scope.tenant_id,
                              target=str(agent.id), address=scope.address)


async def set_labels(rt: Runtime, scope: TenantScope, agent: Agent, labels: list[str]) -> Agent:
    scope.require("write")
    agent.labels = check_labels(labels)
    await agent.save(update_fields=["labels"])
    await rt.audit.append(actor=scope.actor, action="agent.labels", tenant_id=scope.tenant_id,
                          target=str(agent.id), address=scope.address, details={"labels": agent.labels})
    return agent


async def agents_with_label(scope: TenantScope, label: str) -> list[Agent]:
    # JSON containment differs between SQLite and PostgreSQL; label sets are small.
    return [a for a in await scope.query(Agent).filter(revoked_at__isnull=True) if label in a.labels]


async def set_enabled(rt: Runtime, scope: TenantScope, agents: list[Agent], enabled: bool) -> None:
    scope.require("deploy")
    ids = [a.id for a in agents]
    if ids:
        await scope.query(Agent).filter(id__in=ids).update(enabled=enabled)
    for agent in agents:
        agent.enabled = enabled
        await rt.notifier.publish(agent_channel(agent.id))
        await rt.audit.append(actor=scope.actor, action="agent.enable" if enabled else "agent.disable",
                              tenant_id=scope.tenant_id, target=str(agent.id), address=scope.address)


async def tenant_active(tenant_id: uuid.UUID) -> bool:
    tenant = await Tenant.get(id=tenant_id)
    return not tenant.suspended


def agent_json(agent: Agent) -> dict[str, Any]:
    return {
        "id": str(agent.id), "hostname": agent.hostname, "labels": agent.labels,
        "inventory": agent.inventory, "enabled": agent.enabled,
        "revoked": agent.revoked_at is not None,
        "enrolled_at": agent.enrolled_at.isoformat() if agent.enrolled_at else None,
        "last_seen_at": agent.last_seen_at.isoformat() if agent.last_seen_at else None,
        "deployment_id": str(agent.deployment_id) if agent.deployment_id else None,
        "applied_digest": agent.applied_digest, "list_revisions": agent.list_revisions,
        "status": agent.last_status,
    }

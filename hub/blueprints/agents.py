"""Agents in the public API: join tokens, inventory, labels, enable/disable, rotate, revoke."""
from __future__ import annotations

from typing import Any

from quart import Blueprint
from quart_schema import tag_blueprint, validate_request

from hub.api_schemas.agents import (
    AgentOut,
    AgentsOut,
    CredentialOut,
    JoinTokenIn,
    JoinTokenListed,
    JoinTokenOut,
    JoinTokensOut,
    LabelsIn,
    ProtectionIn,
    ProtectionOut,
)
from hub.api_schemas.common import BODY_ERRORS, TENANT_ERRORS, Deleted, RenameIn, responds
from hub.models import Agent, JoinToken
from hub.services import agents
from hub.services.scope import TenantScope
from hub.web import rt, tenant_route

bp = Blueprint("agents", __name__, url_prefix="/api/v1/tenants/<uuid:tenant_id>")
tag_blueprint(bp, ["agents"])


@bp.post("/join-tokens")
@responds(JoinTokenOut, 201, errors=(*BODY_ERRORS, 402))
@tenant_route("write")
@validate_request(JoinTokenIn)
async def create_join_token(scope: TenantScope, data: JoinTokenIn) -> tuple[dict[str, Any], int]:
    """A token that enrols up to `max_uses` servers into this tenant (one by default)."""
    token, credential = await agents.create_join_token(rt(), scope, data.ttl_s, data.labels, data.max_uses)
    return {"id": token.id, "token": credential, "expires_at": token.expires_at, "max_uses": token.max_uses}, 201


@bp.get("/join-tokens")
@responds(JoinTokensOut)
@tenant_route("read")
async def list_join_tokens(scope: TenantScope) -> dict[str, Any]:
    """The tenant's join tokens, newest first (never their secrets)."""
    rows = await scope.query(JoinToken).order_by("-created_at").limit(500)
    return {"join_tokens": [agents.join_token_json(t) for t in rows]}


@bp.delete("/join-tokens/<uuid:join_token_id>")
@responds(JoinTokenListed)
@tenant_route("write")
async def revoke_join_token(scope: TenantScope, join_token: JoinToken) -> dict[str, Any]:
    """No more enrolments with this token; the agents it enrolled stay."""
    return agents.join_token_json(await agents.revoke_join_token(rt(), scope, join_token))


@bp.get("/agents")
@responds(AgentsOut)
@tenant_route("read")
async def list_agents(scope: TenantScope) -> dict[str, Any]:
    """Every enrolled agent, oldest first."""
    rows = await scope.query(Agent).order_by("enrolled_at")
    return {"agents": [agents.agent_json(a) for a in rows]}


@bp.get("/agents/<uuid:agent_id>")
@responds(AgentOut)
@tenant_route("read")
async def get_agent(scope: TenantScope, agent: Agent) -> dict[str, Any]:
    """One agent: inventory, labels, what it runs and its last status."""
    return agents.agent_json(agent)


@bp.patch("/agents/<uuid:agent_id>")
@responds(AgentOut, errors=BODY_ERRORS)
@tenant_route("write")
@validate_request(RenameIn)
async def rename(scope: TenantScope, agent: Agent, data: RenameIn) -> dict[str, Any]:
    """Rename the agent (the name the panel shows; enrolment took the server's hostname)."""
    return agents.agent_json(await agents.rename(rt(), scope, agent, data.name))


@bp.delete("/agents/<uuid:agent_id>")
@responds(Deleted, errors=(*TENANT_ERRORS, 409))
@tenant_route("admin")
async def delete(scope: TenantScope, agent: Agent) -> dict[str, Any]:
    """Forget a revoked agent and its history (409 while it is not revoked)."""
    await agents.delete(rt(), scope, agent)
    return {"id": agent.id, "deleted": True}


@bp.put("/agents/<uuid:agent_id>/labels")
@responds(AgentOut, errors=BODY_ERRORS)
@tenant_route("write")
@validate_request(LabelsIn)
async def set_labels(scope: TenantScope, agent: Agent, data: LabelsIn) -> dict[str, Any]:
    """Replace the agent's labels (deployments can target a label)."""
    return agents.agent_json(await agents.set_labels(rt(), scope, agent, data.labels))


@bp.post("/agents/<uuid:agent_id>/enable")
@responds(AgentOut, errors=(*TENANT_ERRORS, 402))
@tenant_route("deploy")
async def enable(scope: TenantScope, agent: Agent) -> dict[str, Any]:
    """Protect again with the agent's last deployment."""
    await agents.set_enabled(rt(), scope, [agent], True)
    return agents.agent_json(agent)


@bp.post("/agents/<uuid:agent_id>/disable")
@responds(AgentOut)
@tenant_route("deploy")
async def disable(scope: TenantScope, agent: Agent) -> dict[str, Any]:
    """Tell the agent to deactivate its protection (its deployment is kept)."""
    await agents.set_enabled(rt(), scope, [agent], False)
    return agents.agent_json(agent)


@bp.post("/protection")
@responds(ProtectionOut, errors=(*BODY_ERRORS, 402))
@tenant_route("deploy")
@validate_request(ProtectionIn)
async def protection_by_label(scope: TenantScope, data: ProtectionIn) -> dict[str, Any]:
    """Enable or disable every agent carrying a label."""
    targets = await agents.agents_with_label(scope, data.label)
    await agents.set_enabled(rt(), scope, targets, data.enabled)
    return {"agents": [a.id for a in targets], "enabled": data.enabled}


@bp.post("/agents/<uuid:agent_id>/rotate")
@responds(CredentialOut, errors=(*TENANT_ERRORS, 409))
@tenant_route("admin")
async def rotate(scope: TenantScope, agent: Agent) -> dict[str, Any]:
    """A new credential for the agent; the old one stops working at once."""
    return {"id": agent.id, "credential": await agents.rotate(rt(), scope, agent)}


@bp.post("/agents/<uuid:agent_id>/revoke")
@responds(AgentOut)
@tenant_route("admin")
async def revoke(scope: TenantScope, agent: Agent) -> dict[str, Any]:
    """Refuse the agent's credential from now on."""
    await agents.revoke(rt(), scope, agent)
    return agents.agent_json(agent)

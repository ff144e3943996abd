"""Agents in the public API: join tokens, inventory, labels, enable/disable, rotate, revoke."""
from __future__ import annotations

from pydantic import Field
from quart import Blueprint, Response, jsonify
from quart_schema import validate_request

from hub.blueprints.schema import Strict
from hub.models import Agent
from hub.services import agents
from hub.services.scope import TenantScope
from hub.web import rt, tenant_route

bp = Blueprint("agents", __name__, url_prefix="/api/v1/tenants/<uuid:tenant_id>")


class JoinTokenIn(Strict):
    ttl_s: int = Field(default=3600, gt=0, le=3600)
    labels: list[str] = Field(default_factory=list, max_length=64)


class LabelsIn(Strict):
    labels: list[str] = Field(max_length=64)


class ProtectionIn(Strict):
    label: str
    enabled: bool


@bp.post("/join-tokens")
@tenant_route("write")
@validate_request(JoinTokenIn)
async def create_join_token(scope: TenantScope, data: JoinTokenIn) -> tuple[Response, int]:
    token, credential = await agents.create_join_token(rt(), scope, data.ttl_s, data.labels)
    return jsonify({"id": str(token.id), "token": credential, "expires_at": token.expires_at.isoformat()}), 201


@bp.get("/agents")
@tenant_route("read")
async def list_agents(scope: TenantScope) -> Response:
    rows = await scope.query(Agent).order_by("enrolled_at")
    return jsonify({"agents": [agents.agent_json(a) for a in rows]})


@bp.get("/agents/<uuid:agent_id>")
@tenant_route("read")
async def get_agent(scope: TenantScope, agent: Agent) -> Response:
    return jsonify(agents.agent_json(agent))


@bp.put("/agents/<uuid:agent_id>/labels")
@tenant_route("write")
@validate_request(LabelsIn)
async def set_labels(scope: TenantScope, agent: Agent, data: LabelsIn) -> Response:
    return jsonify(agents.agent_json(await agents.set_labels(rt(), scope, agent, data.labels)))


@bp.post("/agents/<uuid:agent_id>/enable")
@tenant_route("deploy")
async def enable(scope: TenantScope, agent: Agent) -> Response:
    await agents.set_enabled(rt(), scope, [agent], True)
    return jsonify(agents.agent_json(agent))


@bp.post("/agents/<uuid:agent_id>/disable")
@tenant_route("deploy")
async def disable(scope: TenantScope, agent: Agent) -> Response:
    await agents.set_enabled(rt(), scope, [agent], False)
    return jsonify(agents.agent_json(agent))


@bp.post("/protection")
@tenant_route("deploy")
@validate_request(ProtectionIn)
async def protection_by_label(scope: TenantScope, data: ProtectionIn) -> Response:
    targets = await agents.agents_with_label(scope, data.label)
    await agents.set_enabled(rt(), scope, targets, data.enabled)
    return jsonify({"agents": [str(a.id) for a in targets], "enabled": data.enabled})


@bp.post("/agents/<uuid:agent_id>/rotate")
@tenant_route("admin")
async def rotate(scope: TenantScope, agent: Agent) -> Response:
    return jsonify({"id": str(agent.id), "credential": await agents.rotate(rt(), scope, agent)})


@bp.post("/agents/<uuid:agent_id>/revoke")
@tenant_route("admin")
async def revoke(scope: TenantScope, agent: Agent) -> Response:
    await agents.revoke(rt(), scope, agent)
    return jsonify(agents.agent_json(agent))

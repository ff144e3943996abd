"""Deployments in the public API: deploy a policy version, inspect, roll back."""
from __future__ import annotations

import uuid

from pydantic import Field
from quart import Blueprint, Response, jsonify
from quart_schema import validate_request

from hub.blueprints.schema import Strict
from hub.errors import NotFound
from hub.models import Deployment, Policy, PolicyVersion
from hub.services import deployments
from hub.services.scope import TenantScope
from hub.web import rt, tenant_route

bp = Blueprint("deployments", __name__, url_prefix="/api/v1/tenants/<uuid:tenant_id>/deployments")


class DeployIn(Strict):
    policy_id: uuid.UUID
    version: int | None = Field(default=None, ge=1, description="default: the latest version")
    agent_ids: list[uuid.UUID] = Field(default_factory=list, max_length=10000)
    labels: list[str] = Field(default_factory=list, max_length=100)
    canary_agent_ids: list[uuid.UUID] = Field(default_factory=list, max_length=1000)
    dry_run: bool = Field(default=False, description="deploy in monitor mode: count, never drop")


class RollbackIn(Strict):
    dry_run: bool = False


@bp.post("")
@tenant_route("deploy")
@validate_request(DeployIn)
async def create(scope: TenantScope, data: DeployIn) -> tuple[Response, int]:
    policy = await scope.get(Policy, data.policy_id, "policy")
    number = data.version or policy.latest_version
    version = await PolicyVersion.get_or_none(policy_id=policy.id, version=number)
    if version is None:
        raise NotFound("policy version")
    d = await deployments.deploy_version(
        rt(), scope, version, agent_ids=data.agent_ids, labels=data.labels,
        canary_ids=data.canary_agent_ids, monitor=data.dry_run,
    )
    return jsonify(await deployments.deployment_json(d, with_targets=True)), 201


@bp.get("")
@tenant_route("read")
async def index(scope: TenantScope) -> Response:
    rows = await scope.query(Deployment).order_by("-created_at").limit(200)
    return jsonify({"deployments": [await deployments.deployment_json(d) for d in rows]})


@bp.get("/<uuid:deployment_id>")
@tenant_route("read")
async def get(scope: TenantScope, deployment: Deployment) -> Response:
    return jsonify(await deployments.deployment_json(deployment, with_targets=True))


@bp.get("/<uuid:deployment_id>/plan")
@tenant_route("read")
async def plan(scope: TenantScope, deployment: Deployment) -> Response:
    return Response(deployment.plan_json, content_type="application/json")


@bp.post("/<uuid:deployment_id>/rollback")
@tenant_route("deploy")
@validate_request(RollbackIn)
async def rollback(scope: TenantScope, deployment: Deployment, data: RollbackIn) -> tuple[Response, int]:
    """Deploy this (earlier) deployment's Plan again to the agents it targeted."""
    d = await deployments.rollback_to(rt(), scope, deployment, monitor=data.dry_run)
    return jsonify(await deployments.deployment_json(d, with_targets=True)), 201

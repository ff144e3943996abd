"""Deployments in the public API: deploy a policy version, inspect, roll back."""
from __future__ import annotations

from typing import Any

from quart import Blueprint, Response
from quart_schema import tag_blueprint, validate_request

from hub.api_schemas.common import BODY_ERRORS, raw_response, responds
from hub.api_schemas.deployments import DeployIn, DeploymentDetail, DeploymentsOut, RollbackIn
from hub.errors import NotFound
from hub.models import Deployment, Policy, PolicyVersion
from hub.services import deployments
from hub.services.scope import TenantScope
from hub.web import rt, tenant_route

bp = Blueprint("deployments", __name__, url_prefix="/api/v1/tenants/<uuid:tenant_id>/deployments")
tag_blueprint(bp, ["deployments"])


@bp.post("")
@responds(DeploymentDetail, 201, errors=(*BODY_ERRORS, 402, 409, 422))
@tenant_route("deploy")
@validate_request(DeployIn)
async def create(scope: TenantScope, data: DeployIn) -> tuple[dict[str, Any], int]:
    """Deploy a policy version (its compiled Plan) to agents chosen by id or label."""
    policy = await scope.get(Policy, data.policy_id, "policy")
    number = data.version or policy.latest_version
    version = await PolicyVersion.get_or_none(policy_id=policy.id, version=number)
    if version is None:
        raise NotFound("policy version")
    d = await deployments.deploy_version(
        rt(), scope, version, agent_ids=data.agent_ids, labels=data.labels,
        canary_ids=data.canary_agent_ids, monitor=data.dry_run,
    )
    return await deployments.deployment_json(d, with_targets=True), 201


@bp.get("")
@responds(DeploymentsOut)
@tenant_route("read")
async def index(scope: TenantScope) -> dict[str, Any]:
    """The 200 newest deployments."""
    rows = await scope.query(Deployment).order_by("-created_at").limit(200)
    return {"deployments": [await deployments.deployment_json(d) for d in rows]}


@bp.get("/<uuid:deployment_id>")
@responds(DeploymentDetail)
@tenant_route("read")
async def get(scope: TenantScope, deployment: Deployment) -> dict[str, Any]:
    """One deployment with each target's rollout status."""
    return await deployments.deployment_json(deployment, with_targets=True)


@bp.get("/<uuid:deployment_id>/plan")
@raw_response("application/json", "the Plan exactly as deployed (its sha256 is the digest)")
@tenant_route("read")
async def plan(scope: TenantScope, deployment: Deployment) -> Response:
    """The deployed Plan, byte for byte."""
    return Response(deployment.plan_json, content_type="application/json")


@bp.post("/<uuid:deployment_id>/rollback")
@responds(DeploymentDetail, 201, errors=(*BODY_ERRORS, 402, 422))
@tenant_route("deploy")
@validate_request(RollbackIn)
async def rollback(scope: TenantScope, deployment: Deployment, data: RollbackIn) -> tuple[dict[str, Any], int]:
    """Deploy this (earlier) deployment's Plan again to the agents it targeted."""
    d = await deployments.rollback_to(rt(), scope, deployment, monitor=data.dry_run)
    return await deployments.deployment_json(d, with_targets=True), 201

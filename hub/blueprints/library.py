"""The library in the public API: a tenant's saved configurations (its policies with
tags, description and origin), searched, cloned, diffed, upgraded and deployed."""
from __future__ import annotations

from typing import Any

from quart import Blueprint
from quart_schema import tag_blueprint, validate_querystring, validate_request

from hub.api_schemas.common import BODY_ERRORS, INPUT_ERRORS, responds
from hub.api_schemas.deployments import DeploymentDetail
from hub.api_schemas.market import (
    BrowseQuery,
    CloneIn,
    DescribeIn,
    DiffOut,
    DiffQuery,
    LibraryEntriesOut,
    LibraryEntryDetail,
    LibraryEntryOut,
    LibraryDeployIn,
    UpgradeIn,
    UpgradeOut,
    UpgradeQuery,
)
from hub.models import Policy, PolicyVersion
from hub.services import deployments, library, marketplace, policies
from hub.services.scope import TenantScope
from hub.web import rt, tenant_route

bp = Blueprint("library", __name__, url_prefix="/api/v1/tenants/<uuid:tenant_id>/library")
tag_blueprint(bp, ["library"])


@bp.get("")
@responds(LibraryEntriesOut, errors=INPUT_ERRORS)
@tenant_route("read")
@validate_querystring(BrowseQuery)
async def index(scope: TenantScope, query_args: BrowseQuery) -> dict[str, Any]:
    """Saved configurations whose name, description or template match `q`, with `tag`."""
    found = await library.search(scope, query_args.q, query_args.tag)
    return {"entries": [library.entry_json(p, e) for p, e in found]}


@bp.get("/<uuid:policy_id>")
@responds(LibraryEntryDetail)
@tenant_route("read")
async def get(scope: TenantScope, policy: Policy) -> dict[str, Any]:
    """One entry with every version."""
    rows = await PolicyVersion.filter(policy_id=policy.id).order_by("version")
    return {**library.entry_json(policy, await library.entry_of(scope, policy)),
            "versions": [policies.version_json(v) for v in rows]}


@bp.put("/<uuid:policy_id>")
@responds(LibraryEntryOut, errors=BODY_ERRORS)
@tenant_route("write")
@validate_request(DescribeIn)
async def describe(scope: TenantScope, policy: Policy, data: DescribeIn) -> dict[str, Any]:
    """Set the entry's tags and description."""
    entry = await library.describe(rt(), scope, policy, data.tags, data.description)
    return library.entry_json(policy, entry)


@bp.post("/<uuid:policy_id>/clone")
@responds(LibraryEntryOut, 201, errors=(*BODY_ERRORS, 409, 422))
@tenant_route("write")
@validate_request(CloneIn)
async def clone(scope: TenantScope, policy: Policy, data: CloneIn) -> tuple[dict[str, Any], int]:
    """A new policy from one version of this one (default: the latest)."""
    copy = await library.clone(rt(), scope, policy, data.version, data.name)
    return library.entry_json(copy, await library.entry_of(scope, copy)), 201


@bp.get("/<uuid:policy_id>/diff")
@responds(DiffOut, errors=INPUT_ERRORS)
@tenant_route("read")
@validate_querystring(DiffQuery)
async def diff(scope: TenantScope, policy: Policy, query_args: DiffQuery) -> dict[str, Any]:
    """A unified diff between two versions, or against another entry's version."""
    other = await scope.get(Policy, query_args.other, "policy") if query_args.other else None
    return await library.diff(scope, policy, query_args.from_version, query_args.to_version, other)


@bp.get("/<uuid:policy_id>/upgrade")
@responds(UpgradeOut, errors=(*INPUT_ERRORS, 409))
@tenant_route("read")
@validate_querystring(UpgradeQuery)
async def upgrade_preview(scope: TenantScope, policy: Policy, query_args: UpgradeQuery) -> dict[str, Any]:
    """What upgrading to a template version (default: the latest) would change."""
    plan = await marketplace.upgrade_plan(scope, policy, query_args.version)
    return {k: v for k, v in plan.items() if k != "entry"}


@bp.post("/<uuid:policy_id>/upgrade")
@responds(LibraryEntryOut, errors=(*BODY_ERRORS, 409, 422))
@tenant_route("write")
@validate_request(UpgradeIn)
async def upgrade(scope: TenantScope, policy: Policy, data: UpgradeIn) -> dict[str, Any]:
    """Save the template version, rendered with the entry's parameters, as a new version."""
    await marketplace.upgrade(rt(), scope, policy, data.version)
    policy = await Policy.get(id=policy.id)
    return library.entry_json(policy, await library.entry_of(scope, policy))


@bp.post("/<uuid:policy_id>/deploy")
@responds(DeploymentDetail, 201, errors=(*BODY_ERRORS, 409, 422))
@tenant_route("deploy")
@validate_request(LibraryDeployIn)
async def deploy(scope: TenantScope, policy: Policy, data: LibraryDeployIn) -> tuple[dict[str, Any], int]:
    """Deploy a version with the usual canary and rollout; roll back through deployments."""
    v = await library.version(policy, data.version)
    d = await deployments.deploy_version(rt(), scope, v, agent_ids=data.agent_ids, labels=data.labels,
                                         canary_ids=data.canary_agent_ids, monitor=data.dry_run)
    return await deployments.deployment_json(d, with_targets=True), 201

"""Policies in the public API: create, save (a new version each time), read versions."""
from __future__ import annotations

from typing import Any

from quart import Blueprint
from quart_schema import tag_blueprint, validate_request

from hub.api_schemas.common import BODY_ERRORS, Deleted, responds
from hub.api_schemas.policies import (
    PoliciesOut,
    PolicyDetail,
    PolicyIn,
    PolicyOut,
    PolicyRenameIn,
    PolicySaved,
    SourceIn,
    VersionsOut,
    VersionWithSource,
)
from hub.errors import NotFound
from hub.models import Policy, PolicyVersion
from hub.services import policies
from hub.services.scope import TenantScope
from hub.web import rt, tenant_route

bp = Blueprint("policies", __name__, url_prefix="/api/v1/tenants/<uuid:tenant_id>/policies")
tag_blueprint(bp, ["policies"])



def policy_json(p: Policy) -> dict[str, Any]:
    return {"id": p.id, "name": p.name, "latest_version": p.latest_version}


@bp.post("")
@responds(PolicySaved, 201, errors=(*BODY_ERRORS, 409, 422))
@tenant_route("write")
@validate_request(PolicyIn)
async def create(scope: TenantScope, data: PolicyIn) -> tuple[dict[str, Any], int]:
    """A new policy and its version 1, checked and (without errors) compiled."""
    policy, version = await policies.create(rt(), scope, data.name, data.source)
    return {**policy_json(policy), "latest": policies.version_json(version)}, 201


@bp.get("")
@responds(PoliciesOut)
@tenant_route("read")
async def index(scope: TenantScope) -> dict[str, Any]:
    """Every policy, by name."""
    return {"policies": [policy_json(p) for p in await scope.query(Policy).order_by("name")]}


@bp.get("/<uuid:policy_id>")
@responds(PolicyDetail)
@tenant_route("read")
async def get(scope: TenantScope, policy: Policy) -> dict[str, Any]:
    """The policy with its latest version's source and diagnostics."""
    latest = await PolicyVersion.get(policy_id=policy.id, version=policy.latest_version)
    return {**policy_json(policy), "latest": policies.version_json(latest, source=True)}


@bp.put("/<uuid:policy_id>")
@responds(PolicySaved, errors=(*BODY_ERRORS, 422))
@tenant_route("write")
@validate_request(SourceIn)
async def save(scope: TenantScope, policy: Policy, data: SourceIn) -> dict[str, Any]:
    """Save new source: a new version, even when the checker finds errors."""
    version = await policies.save(rt(), scope, policy, data.source)
    return {**policy_json(policy), "latest": policies.version_json(version)}


@bp.patch("/<uuid:policy_id>")
@responds(PolicyOut, errors=(*BODY_ERRORS, 409))
@tenant_route("write")
@validate_request(PolicyRenameIn)
async def rename(scope: TenantScope, policy: Policy, data: PolicyRenameIn) -> dict[str, Any]:
    """Rename the policy (its versions and deployments keep their content)."""
    return policy_json(await policies.rename(rt(), scope, policy, data.name))


@bp.delete("/<uuid:policy_id>")
@responds(Deleted)
@tenant_route("write")
async def delete(scope: TenantScope, policy: Policy) -> dict[str, Any]:
    """Delete the policy and its versions; deployments made from it keep their Plans."""
    await policies.delete(rt(), scope, policy)
    return {"id": policy.id, "deleted": True}


@bp.get("/<uuid:policy_id>/versions")
@responds(VersionsOut)
@tenant_route("read")
async def versions(scope: TenantScope, policy: Policy) -> dict[str, Any]:
    """Every saved version with its diagnostics, oldest first."""
    rows = await PolicyVersion.filter(policy_id=policy.id).order_by("version")
    return {"versions": [policies.version_json(v) for v in rows]}


@bp.get("/<uuid:policy_id>/versions/<int:version>")
@responds(VersionWithSource)
@tenant_route("read")
async def version(scope: TenantScope, policy: Policy, version: int) -> dict[str, Any]:
    """One version with its source."""
    v = await PolicyVersion.get_or_none(policy_id=policy.id, version=version)
    if v is None:
        raise NotFound("policy version")
    return policies.version_json(v, source=True)

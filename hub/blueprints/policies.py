"""Policies in the public API: create, save (a new version each time), read versions."""
from __future__ import annotations

from pydantic import Field
from quart import Blueprint, Response, jsonify
from quart_schema import validate_request

from hub.blueprints.schema import Strict
from hub.errors import NotFound
from hub.models import Policy, PolicyVersion
from hub.services import policies
from hub.services.scope import TenantScope
from hub.web import rt, tenant_route

bp = Blueprint("policies", __name__, url_prefix="/api/v1/tenants/<uuid:tenant_id>/policies")


class PolicyIn(Strict):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    source: str = Field(max_length=policies.MAX_SOURCE_CHARS)


class SourceIn(Strict):
    source: str = Field(max_length=policies.MAX_SOURCE_CHARS)


def policy_json(p: Policy) -> dict:
    return {"id": str(p.id), "name": p.name, "latest_version": p.latest_version}


@bp.post("")
@tenant_route("write")
@validate_request(PolicyIn)
async def create(scope: TenantScope, data: PolicyIn) -> tuple[Response, int]:
    policy, version = await policies.create(rt(), scope, data.name, data.source)
    return jsonify({**policy_json(policy), "latest": policies.version_json(version)}), 201


@bp.get("")
@tenant_route("read")
async def index(scope: TenantScope) -> Response:
    return jsonify({"policies": [policy_json(p) for p in await scope.query(Policy).order_by("name")]})


@bp.get("/<uuid:policy_id>")
@tenant_route("read")
async def get(scope: TenantScope, policy: Policy) -> Response:
    latest = await PolicyVersion.get(policy_id=policy.id, version=policy.latest_version)
    return jsonify({**policy_json(policy), "latest": policies.version_json(latest, source=True)})


@bp.put("/<uuid:policy_id>")
@tenant_route("write")
@validate_request(SourceIn)
async def save(scope: TenantScope, policy: Policy, data: SourceIn) -> Response:
    version = await policies.save(rt(), scope, policy, data.source)
    return jsonify({**policy_json(policy), "latest": policies.version_json(version)})


@bp.get("/<uuid:policy_id>/versions")
@tenant_route("read")
async def versions(scope: TenantScope, policy: Policy) -> Response:
    rows = await PolicyVersion.filter(policy_id=policy.id).order_by("version")
    return jsonify({"versions": [policies.version_json(v) for v in rows]})


@bp.get("/<uuid:policy_id>/versions/<int:version>")
@tenant_route("read")
async def version(scope: TenantScope, policy: Policy, version: int) -> Response:
    v = await PolicyVersion.get_or_none(policy_id=policy.id, version=version)
    if v is None:
        raise NotFound("policy version")
    return jsonify(policies.version_json(v, source=True))

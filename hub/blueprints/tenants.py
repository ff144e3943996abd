"""Tenants, members, invitations and API tokens under /api/v1."""
from __future__ import annotations

from pydantic import Field
from quart import Blueprint, Response, jsonify
from quart_schema import validate_request

from hub.blueprints.schema import Strict, iso
from hub.models import ApiToken, Membership
from hub.services import tenants
from hub.services.scope import TenantScope
from hub.web import principal, rt, tenant_route

bp = Blueprint("tenants", __name__, url_prefix="/api/v1")
T = "/tenants/<uuid:tenant_id>"


class TenantIn(Strict):
    name: str = Field(min_length=1, max_length=200)


class InviteIn(Strict):
    email: str = Field(max_length=320)
    role: str


class AcceptIn(Strict):
    token: str = Field(max_length=200)


class RoleIn(Strict):
    role: str


class TokenIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[str]
    expires_in_s: int | None = Field(default=None, gt=0)


def token_json(token: ApiToken) -> dict:
    return {"id": str(token.id), "name": token.name, "scopes": token.scopes,
            "created_at": iso(token.created_at), "expires_at": iso(token.expires_at),
            "revoked_at": iso(token.revoked_at)}


@bp.post("/tenants")
@validate_request(TenantIn)
async def create_tenant(data: TenantIn) -> tuple[Response, int]:
    tenant = await tenants.create_tenant(rt(), await principal(), data.name)
    return jsonify({"id": str(tenant.id), "name": tenant.name}), 201


@bp.get("/tenants")
async def list_tenants() -> Response:
    rows = await tenants.tenants_of(await principal())
    return jsonify({"tenants": [{"id": str(t.id), "name": t.name, "role": role} for t, role in rows]})


@bp.get(T)
@tenant_route("read")
async def get_tenant(scope: TenantScope) -> Response:
    from hub.models import Tenant

    tenant = await scope.get(Tenant, scope.tenant_id)
    return jsonify({"id": str(tenant.id), "name": tenant.name, "suspended": tenant.suspended,
                    "permissions": sorted(scope.permissions)})


@bp.get(T + "/members")
@tenant_route("read")
async def list_members(scope: TenantScope) -> Response:
    rows = await scope.query(Membership).prefetch_related("user")
    return jsonify({"members": [{"id": m.id, "email": m.user.email, "role": m.role} for m in rows]})


@bp.patch(T + "/members/<int:member_id>")
@tenant_route("admin")
@validate_request(RoleIn)
async def set_role(scope: TenantScope, membership: Membership, data: RoleIn) -> Response:
    m = await tenants.set_role(rt(), scope, membership, data.role)
    return jsonify({"id": m.id, "role": m.role})


@bp.post(T + "/invitations")
@tenant_route("admin")
@validate_request(InviteIn)
async def invite(scope: TenantScope, data: InviteIn) -> tuple[Response, int]:
    token = await tenants.invite(rt(), scope, data.email, data.role)
    return jsonify({"token": token}), 201


@bp.post("/invitations/accept")
@validate_request(AcceptIn)
async def accept(data: AcceptIn) -> Response:
    m = await tenants.accept_invitation(rt(), await principal(), data.token)
    return jsonify({"tenant_id": str(m.tenant_id), "role": m.role})


@bp.get(T + "/tokens")
@tenant_route("admin")
async def list_tokens(scope: TenantScope) -> Response:
    rows = await scope.query(ApiToken).order_by("created_at")
    return jsonify({"tokens": [token_json(t) for t in rows]})


@bp.post(T + "/tokens")
@tenant_route("admin")
@validate_request(TokenIn)
async def create_token(scope: TenantScope, data: TokenIn) -> tuple[Response, int]:
    token, credential = await tenants.create_token(rt(), scope, data.name, data.scopes, data.expires_in_s)
    return jsonify({**token_json(token), "token": credential}), 201


@bp.delete(T + "/tokens/<uuid:token_id>")
@tenant_route("admin")
async def revoke_token(scope: TenantScope, token: ApiToken) -> Response:
    await tenants.revoke_token(rt(), scope, token)
    return jsonify(token_json(token))


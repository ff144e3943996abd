"""Tenants, members, invitations and API tokens under /api/v1."""
from __future__ import annotations

from typing import Any

from quart import Blueprint
from quart_schema import tag_blueprint, validate_request

from hub.api_schemas.common import BODY_ERRORS, TENANT_ERRORS, responds
from hub.api_schemas.tenants import (
    AcceptIn,
    AcceptOut,
    InviteIn,
    InvitationOut,
    MembersOut,
    NewTokenOut,
    RoleIn,
    RoleOut,
    TenantDetail,
    TenantIn,
    TenantOut,
    TenantsOut,
    TokenIn,
    TokenOut,
    TokensOut,
)
from hub.models import ApiToken, Membership, Tenant
from hub.services import tenants
from hub.services.scope import TenantScope
from hub.web import principal, rt, tenant_route

bp = Blueprint("tenants", __name__, url_prefix="/api/v1")
tag_blueprint(bp, ["tenants"])
T = "/tenants/<uuid:tenant_id>"
# Routes outside a tenant: no tenant to be absent from.
USER_ERRORS = (400, 401, 403, 413)


def token_json(token: ApiToken) -> dict[str, Any]:
    return {"id": token.id, "name": token.name, "scopes": token.scopes, "created_at": token.created_at,
            "expires_at": token.expires_at, "revoked_at": token.revoked_at}


@bp.post("/tenants")
@responds(TenantOut, 201, errors=USER_ERRORS)
@validate_request(TenantIn)
async def create_tenant(data: TenantIn) -> tuple[dict[str, Any], int]:
    """A new tenant owned by the signed-in user (API tokens cannot create tenants)."""
    tenant = await tenants.create_tenant(rt(), await principal(), data.name)
    return {"id": tenant.id, "name": tenant.name}, 201


@bp.get("/tenants")
@responds(TenantsOut, errors=(401,))
async def list_tenants() -> dict[str, Any]:
    """The caller's tenants (a token's own tenant)."""
    rows = await tenants.tenants_of(await principal())
    return {"tenants": [{"id": t.id, "name": t.name, "role": role} for t, role in rows]}


@bp.get(T)
@responds(TenantDetail)
@tenant_route("read")
async def get_tenant(scope: TenantScope) -> dict[str, Any]:
    """The tenant and what the caller may do in it."""
    tenant = await scope.get(Tenant, scope.tenant_id)
    return {"id": tenant.id, "name": tenant.name, "suspended": tenant.suspended,
            "permissions": sorted(scope.permissions)}


@bp.get(T + "/members")
@responds(MembersOut)
@tenant_route("read")
async def list_members(scope: TenantScope) -> dict[str, Any]:
    """The tenant's members and their roles."""
    rows = await scope.query(Membership).prefetch_related("user")
    return {"members": [{"id": m.id, "email": m.user.email, "role": m.role} for m in rows]}


@bp.patch(T + "/members/<int:member_id>")
@responds(RoleOut, errors=(*BODY_ERRORS, 409))
@tenant_route("admin")
@validate_request(RoleIn)
async def set_role(scope: TenantScope, membership: Membership, data: RoleIn) -> dict[str, Any]:
    """Change a member's role (a tenant keeps at least one owner)."""
    m = await tenants.set_role(rt(), scope, membership, data.role)
    return {"id": m.id, "role": m.role}


@bp.post(T + "/invitations")
@responds(InvitationOut, 201, errors=BODY_ERRORS)
@tenant_route("admin")
@validate_request(InviteIn)
async def invite(scope: TenantScope, data: InviteIn) -> tuple[dict[str, Any], int]:
    """Invite someone by email with a role; the token is shown once."""
    token = await tenants.invite(rt(), scope, data.email, data.role)
    return {"token": token}, 201


@bp.post("/invitations/accept")
@responds(AcceptOut, errors=(*USER_ERRORS, 404, 409))
@validate_request(AcceptIn)
async def accept(data: AcceptIn) -> dict[str, Any]:
    """Join a tenant as the signed-in user the invitation was sent to."""
    m = await tenants.accept_invitation(rt(), await principal(), data.token)
    return {"tenant_id": m.tenant_id, "role": m.role}


@bp.get(T + "/tokens")
@responds(TokensOut, errors=TENANT_ERRORS)
@tenant_route("admin")
async def list_tokens(scope: TenantScope) -> dict[str, Any]:
    """The tenant's API tokens (never their secrets)."""
    rows = await scope.query(ApiToken).order_by("created_at")
    return {"tokens": [token_json(t) for t in rows]}


@bp.post(T + "/tokens")
@responds(NewTokenOut, 201, errors=BODY_ERRORS)
@tenant_route("admin")
@validate_request(TokenIn)
async def create_token(scope: TenantScope, data: TokenIn) -> tuple[dict[str, Any], int]:
    """A new API token with some of the caller's own permissions."""
    token, credential = await tenants.create_token(rt(), scope, data.name, data.scopes, data.expires_in_s)
    return {**token_json(token), "token": credential}, 201


@bp.delete(T + "/tokens/<uuid:token_id>")
@responds(TokenOut)
@tenant_route("admin")
async def revoke_token(scope: TenantScope, token: ApiToken) -> dict[str, Any]:
    """Revoke a token: it is refused from the next request on."""
    await tenants.revoke_token(rt(), scope, token)
    return token_json(token)

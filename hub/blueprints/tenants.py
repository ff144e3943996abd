"""Tenants, members, invitations and API tokens under /api/v1."""
from __future__ import annotations

from typing import Any

from quart import Blueprint
from quart_schema import security_scheme, tag_blueprint, validate_request

from hub.api_schemas.common import BODY_ERRORS, TENANT_ERRORS, responds
from hub.api_schemas.tenants import (
    AcceptIn,
    AcceptOut,
    DeletedOut,
    InvitationListed,
    InvitationsOut,
    InviteIn,
    InvitationOut,
    MembersOut,
    NewTokenOut,
    RoleIn,
    RoleOut,
    SignUpIn,
    SignUpOut,
    TenantDetail,
    TenantIn,
    TenantOut,
    TenantsOut,
    TokenIn,
    TokenOut,
    TokensOut,
)
from hub.models import ApiToken, Invitation, Membership, Tenant
from hub.services import tenants
from hub.services.scope import TenantScope
from hub.web import client_address, principal, rt, tenant_route

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


@bp.patch(T)
@responds(TenantOut, errors=BODY_ERRORS)
@tenant_route("admin")
@validate_request(TenantIn)
async def rename_tenant(scope: TenantScope, data: TenantIn) -> dict[str, Any]:
    """Rename the tenant (admins)."""
    tenant = await tenants.rename_tenant(rt(), scope, data.name)
    return {"id": tenant.id, "name": tenant.name}


@bp.delete(T)
@responds(DeletedOut, errors=(*TENANT_ERRORS, 409))
@tenant_route("admin")
async def delete_tenant(scope: TenantScope) -> dict[str, Any]:
    """Delete the tenant and everything in it (owners; 409 while an agent is enrolled)."""
    await tenants.delete_tenant(rt(), scope)
    return {"deleted": True}


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


@bp.delete(T + "/members/<int:member_id>")
@responds(DeletedOut, errors=(*TENANT_ERRORS, 409))
@tenant_route("admin")
async def remove_member(scope: TenantScope, membership: Membership) -> dict[str, Any]:
    """Remove a member (only an owner removes an owner); a tenant keeps at least one owner."""
    await tenants.remove_member(rt(), scope, membership)
    return {"deleted": True}


@bp.get(T + "/invitations")
@responds(InvitationsOut)
@tenant_route("admin")
async def list_invitations(scope: TenantScope) -> dict[str, Any]:
    """Invitations sent from this tenant, newest first (never their tokens)."""
    rows = await scope.query(Invitation).order_by("-created_at").limit(500)
    return {"invitations": [tenants.invitation_json(i) for i in rows]}


@bp.delete(T + "/invitations/<uuid:invitation_id>")
@responds(InvitationListed, errors=(*TENANT_ERRORS, 409))
@tenant_route("admin")
async def revoke_invitation(scope: TenantScope, invitation: Invitation) -> dict[str, Any]:
    """A pending invitation stops working (409 once accepted)."""
    return tenants.invitation_json(await tenants.revoke_invitation(rt(), scope, invitation))


@bp.post("/invitations/sign-up")
@responds(SignUpOut, 201, errors=(400, 404, 409, 413))
@security_scheme([])
@validate_request(SignUpIn)
async def sign_up(data: SignUpIn) -> tuple[dict[str, Any], int]:
    """Accept an invitation by making the account it was sent to (no sign-in: the token is
    the proof). Sign in afterwards; set up 2FA then."""
    user, m = await tenants.sign_up(rt(), data.token, data.password, client_address())
    return {"user_id": user.id, "email": user.email, "tenant_id": m.tenant_id, "role": m.role}, 201


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

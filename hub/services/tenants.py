"""Tenants, memberships, invitations and API tokens."""
from __future__ import annotations

import datetime as dt
import uuid

from tortoise.transactions import in_transaction

from hub.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from hub.models import ApiToken, Invitation, Membership, Tenant, User
from hub.models.access import ROLES, TOKEN_SCOPES
from hub.runtime import Runtime
from hub.security import digest, make_credential, new_secret, same, split_credential
from hub.services.accounts import normalise_email, now
from hub.services.scope import Principal, TenantScope

TOKEN_PREFIX = "bwt"
INVITATION_TTL_S = 7 * 86400


async def create_tenant(rt: Runtime, principal: Principal, name: str) -> Tenant:
    if principal.user_id is None:
        raise Forbidden("only a signed-in user can create a tenant")
    name = name.strip()
    if not name:
        raise InvalidInput("a tenant needs a name")
    async with in_transaction() as conn:
        tenant = await Tenant.create(name=name, using_db=conn)
        await Membership.create(user_id=principal.user_id, tenant=tenant, role="owner", using_db=conn)
        await rt.audit.append(actor=principal.actor, action="tenant.create", tenant_id=tenant.id,
                              target=str(tenant.id), address=principal.address, details={"name": name},
                              using_db=conn)
    return tenant


async def tenants_of(principal: Principal) -> list[tuple[Tenant, str]]:
    if principal.token_tenant_id is not None:
        tenant = await Tenant.get(id=principal.token_tenant_id)
        return [(tenant, "token")]
    memberships = await Membership.filter(user_id=principal.user_id, tenant__closed_at__isnull=True) \
        .prefetch_related("tenant")
    return [(m.tenant, m.role) for m in memberships]


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}")


async def invite(rt: Runtime, scope: TenantScope, email: str, role: str) -> str:
    """An invitation; returns the one-time token to hand to the invitee."""
    scope.require("admin")
    _check_role(role)
    if role == "owner" and "billing" not in scope.permissions:
        raise Forbidden("only an owner can invite an owner")
    token = new_secret()
    await Invitation.create(
        tenant_id=scope.tenant_id, email=normalise_email(email), role=role, token_hash=digest(token),
        expires_at=now() + dt.timedelta(seconds=INVITATION_TTL_S),
    )
    await rt.audit.append(actor=scope.actor, action="member.invite", tenant_id=scope.tenant_id,
                          target=email, address=scope.address, details={"role": role})
    return token


async def accept_invitation(rt: Runtime, principal: Principal, token: str) -> Membership:
    if principal.user_id is None:
        raise Forbidden("sign in to accept an invitation")
    invitation = await Invitation.get_or_none(token_hash=digest(token), accepted_at__isnull=True)
    if invitation is None or invitation.expires_at <= now():
        raise NotFound("invitation")
    user = await User.get(id=principal.user_id)
    if user.email != invitation.email:
        raise NotFound("invitation")
    if await Membership.exists(user_id=user.id, tenant_id=invitation.tenant_id):
        raise Conflict("already a member")
    updated = await Invitation.filter(id=invitation.id, accepted_at__isnull=True).update(accepted_at=now())
    if not updated:
        raise NotFound("invitation")
    membership = await Membership.create(user_id=user.id, tenant_id=invitation.tenant_id, role=invitation.role)
    await rt.audit.append(actor=principal.actor, action="member.join", tenant_id=invitation.tenant_id,
                          target=user.email, address=principal.address, details={"role": invitation.role})
    return membership


async def set_role(rt: Runtime, scope: TenantScope, membership: Membership, role: str) -> Membership:
    scope.require("admin")
    _check_role(role)
    if (role == "owner" or membership.role == "owner") and "billing" not in scope.permissions:
        raise Forbidden("only an owner can grant or take the owner role")
    if membership.role == "owner" and role != "owner":
        owners = await scope.query(Membership).filter(role="owner").count()
        if owners <= 1:
            raise Conflict("a tenant keeps at least one owner")
    old = membership.role
    membership.role = role
    await membership.save(update_fields=["role"])
    await rt.audit.append(actor=scope.actor, action="member.role", tenant_id=scope.tenant_id,
                          target=str(membership.user_id), address=scope.address,
                          details={"from": old, "to": role})
    return membership


# --- API tokens ---------------------------------------------------------------------------

async def create_token(rt: Runtime, scope: TenantScope, name: str, scopes: list[str],
                       expires_in_s: int | None) -> tuple[ApiToken, str]:
    """A new token; the credential is returned once and only its digest is kept."""
    scope.require("admin")
    bad = sorted(set(scopes) - set(TOKEN_SCOPES))
    if bad or not scopes:
        raise InvalidInput(f"scopes must be a non-empty subset of {', '.join(TOKEN_SCOPES)}")
    missing = set(scopes) - scope.permissions
    if missing:
        raise Forbidden(f"you cannot grant {', '.join(sorted(missing))}")
    if expires_in_s is not None and expires_in_s <= 0:
        raise InvalidInput("expires_in_s must be positive")
    token_id = uuid.uuid4()
    credential, secret_hash = make_credential(TOKEN_PREFIX, token_id)
    async with in_transaction() as conn:
        token = await ApiToken.create(
            id=token_id, tenant_id=scope.tenant_id, name=name, secret_hash=secret_hash,
            scopes=sorted(set(scopes)), created_by_id=scope.principal.user_id,
            expires_at=None if expires_in_s is None else now() + dt.timedelta(seconds=expires_in_s),
            using_db=conn,
        )
        await rt.audit.append(actor=scope.actor, action="token.create", tenant_id=scope.tenant_id,
                              target=str(token.id), address=scope.address, details={"scopes": token.scopes},
                              using_db=conn)
    from hub.services import alerts

    await alerts.security_event(rt, scope.tenant_id, f"new API token {name!r} ({', '.join(token.scopes)}) "
                                f"created by {scope.actor}", f"token:{token.id}")
    return token, credential


async def revoke_token(rt: Runtime, scope: TenantScope, token: ApiToken) -> None:
    scope.require("admin")
    if token.revoked_at is None:
        token.revoked_at = now()
        async with in_transaction() as conn:
            await token.save(update_fields=["revoked_at"], using_db=conn)
            await rt.audit.append(actor=scope.actor, action="token.revoke", tenant_id=scope.tenant_id,
                                  target=str(token.id), address=scope.address, using_db=conn)


async def authenticate_token(credential: str, address: str) -> Principal:
    parts = split_credential(TOKEN_PREFIX, credential)
    if parts is None:
        raise Unauthenticated("malformed API token")
    token = await ApiToken.get_or_none(id=parts[0])
    if token is None or not same(token.secret_hash, digest(parts[1])):
        raise Unauthenticated("unknown API token")
    if token.revoked_at is not None:
        raise Unauthenticated("this API token was revoked")
    if token.expires_at is not None and token.expires_at <= now():
        raise Unauthenticated("this API token has expired")
    return Principal(actor=f"token:{token.id}", address=address, token_tenant_id=token.tenant_id,
                     token_scopes=frozenset(token.scopes))

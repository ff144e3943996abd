"""Tenants, memberships, invitations and API tokens."""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from hub.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from hub.models import ApiToken, Invitation, Membership, Tenant, User
from hub.models.access import ROLES, TOKEN_SCOPES
from hub.runtime import Runtime
from hub.security import digest, make_credential, new_secret, same, split_credential
from hub.services import lists
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


async def open_invitation(token: str) -> Invitation:
    """The pending invitation this token is for. Raises NotFound for an unknown, used,
    revoked or expired one alike."""
    if not token or len(token) > 200:
        raise NotFound("invitation")
    invitation = await Invitation.get_or_none(token_hash=digest(token), accepted_at__isnull=True,
                                              revoked_at__isnull=True)
    if invitation is None or invitation.expires_at <= now():
        raise NotFound("invitation")
    return invitation


async def _join(rt: Runtime, invitation: Invitation, user: User, actor: str, address: str, conn) -> Membership:
    """Spend the invitation (once, even against a parallel accept) and add the member."""
    updated = await Invitation.filter(id=invitation.id, accepted_at__isnull=True, revoked_at__isnull=True) \
        .using_db(conn).update(accepted_at=now())
    if not updated:
        raise NotFound("invitation")
    membership = await Membership.create(user_id=user.id, tenant_id=invitation.tenant_id, role=invitation.role,
                                         using_db=conn)
    await rt.audit.append(actor=actor, action="member.join", tenant_id=invitation.tenant_id,
                          target=user.email, address=address, details={"role": invitation.role}, using_db=conn)
    return membership


async def accept_invitation(rt: Runtime, principal: Principal, token: str) -> Membership:
    if principal.user_id is None:
        raise Forbidden("sign in to accept an invitation")
    invitation = await open_invitation(token)
    user = await User.get(id=principal.user_id)
    if user.email != invitation.email:
        raise NotFound("invitation")
    if await Membership.exists(user_id=user.id, tenant_id=invitation.tenant_id):
        raise Conflict("already a member")
    async with in_transaction() as conn:
        return await _join(rt, invitation, user, principal.actor, principal.address, conn)


async def sign_up(rt: Runtime, token: str, password: str, address: str) -> tuple[User, Membership]:
    """Accepting an invitation makes the account: the invited email, the chosen password.
    Raises NotFound (bad token), Conflict (the email has an account: sign in to accept)."""
    from hub.services.accounts import check_password_strength

    invitation = await open_invitation(token)
    check_password_strength(password)
    if await User.exists(email=invitation.email):
        raise Conflict("this email already has an account: sign in, then open the invitation again")
    password_hash = await rt.passwords.hash(password)
    try:
        async with in_transaction() as conn:
            user = await User.create(email=invitation.email, password_hash=password_hash, using_db=conn)
            membership = await _join(rt, invitation, user, f"user:{user.email}", address, conn)
    except IntegrityError:
        raise Conflict("this email already has an account: sign in, then open the invitation again") from None
    return user, membership


def invitation_state(invitation: Invitation) -> str:
    if invitation.accepted_at is not None:
        return "accepted"
    if invitation.revoked_at is not None:
        return "revoked"
    return "expired" if invitation.expires_at <= now() else "pending"


def invitation_json(i: Invitation) -> dict[str, Any]:
    return {"id": i.id, "email": i.email, "role": i.role, "created_at": i.created_at, "expires_at": i.expires_at,
            "accepted_at": i.accepted_at, "revoked_at": i.revoked_at, "state": invitation_state(i)}


async def revoke_invitation(rt: Runtime, scope: TenantScope, invitation: Invitation) -> Invitation:
    """A pending invitation stops working; an accepted one is history (409)."""
    scope.require("admin")
    if invitation.accepted_at is not None:
        raise Conflict("this invitation was accepted: remove the member instead")
    if invitation.revoked_at is None:
        invitation.revoked_at = now()
        await invitation.save(update_fields=["revoked_at"])
        await rt.audit.append(actor=scope.actor, action="member.invite.revoke", tenant_id=scope.tenant_id,
                              target=invitation.email, address=scope.address)
    return invitation


async def _keeps_an_owner(scope: TenantScope, membership: Membership) -> None:
    """The last owner can be neither demoted nor removed: someone must hold the tenant."""
    if membership.role == "owner":
        owners = await scope.query(Membership).filter(role="owner").count()
        if owners <= 1:
            raise Conflict("a tenant keeps at least one owner")


async def remove_member(rt: Runtime, scope: TenantScope, membership: Membership) -> None:
    """Take someone out of the tenant; their sessions stay, their access here ends."""
    scope.require("admin")
    if membership.role == "owner" and "billing" not in scope.permissions:
        raise Forbidden("only an owner can remove an owner")
    await _keeps_an_owner(scope, membership)
    user = await User.get(id=membership.user_id)
    async with in_transaction() as conn:
        await Membership.filter(id=membership.id).using_db(conn).delete()
        await rt.audit.append(actor=scope.actor, action="member.remove", tenant_id=scope.tenant_id,
                              target=user.email, address=scope.address, details={"role": membership.role},
                              using_db=conn)


async def rename_tenant(rt: Runtime, scope: TenantScope, name: str) -> Tenant:
    scope.require("admin")
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput("a tenant needs a name of at most 200 characters")
    tenant = await Tenant.get(id=scope.tenant_id)
    old, tenant.name = tenant.name, name
    await tenant.save(update_fields=["name"])
    await rt.audit.append(actor=scope.actor, action="tenant.rename", tenant_id=scope.tenant_id,
                          target=str(tenant.id), address=scope.address, details={"from": old, "to": name})
    return tenant


async def delete_tenant(rt: Runtime, scope: TenantScope) -> None:
    """Owners only, and only once no agent is enrolled (revoke them first: an agent that
    loses its tenant would keep enforcing, unmanaged). The audit entries stay."""
    from hub.models import Agent

    scope.require("billing")
    if await scope.query(Agent).filter(revoked_at__isnull=True).exists():
        raise Conflict("revoke this tenant's agents first")
    tenant = await Tenant.get(id=scope.tenant_id)
    async with in_transaction() as conn:
        await rt.audit.append(actor=scope.actor, action="tenant.delete", tenant_id=scope.tenant_id,
                              target=str(tenant.id), address=scope.address, details={"name": tenant.name},
                              using_db=conn)
        await lists.delete_tenant_lists(conn, tenant.id)
        await Tenant.filter(id=tenant.id).using_db(conn).delete()


async def set_role(rt: Runtime, scope: TenantScope, membership: Membership, role: str) -> Membership:
    scope.require("admin")
    _check_role(role)
    if (role == "owner" or membership.role == "owner") and "billing" not in scope.permissions:
        raise Forbidden("only an owner can grant or take the owner role")
    if role != "owner":
        await _keeps_an_owner(scope, membership)
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

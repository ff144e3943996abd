"""Tenants, members, invitations and API tokens."""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from pydantic import Field

from hub.api_schemas.common import Strict
from hub.models.access import ROLES, TOKEN_SCOPES

# Literal of a tuple is the Literal of its items: the words stay defined in one place.
Role = Literal[ROLES]  # type: ignore[valid-type]
Scope = Literal[TOKEN_SCOPES]  # type: ignore[valid-type]


class TenantIn(Strict):
    name: str = Field(min_length=1, max_length=200)


class InviteIn(Strict):
    email: str = Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    role: Role


class AcceptIn(Strict):
    token: str = Field(max_length=200)


class RoleIn(Strict):
    role: Role


class TokenIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[Scope] = Field(min_length=1, max_length=4)
    expires_in_s: int | None = Field(default=None, gt=0, le=10 * 365 * 86400)


class TenantOut(Strict):
    id: uuid.UUID
    name: str


class TenantListed(TenantOut):
    role: Role | Literal["token"] = Field(description="the caller's role, or `token` for an API token")


class TenantsOut(Strict):
    tenants: list[TenantListed]


class TenantDetail(TenantOut):
    suspended: bool
    permissions: list[str] = Field(description="what the caller may do here")


class MemberOut(Strict):
    id: int
    email: str
    role: Role


class MembersOut(Strict):
    members: list[MemberOut]


class RoleOut(Strict):
    id: int
    role: Role


class InvitationOut(Strict):
    token: str = Field(description="hand it to the invitee; shown once")


class AcceptOut(Strict):
    tenant_id: uuid.UUID
    role: Role


class TokenOut(Strict):
    id: uuid.UUID
    name: str
    scopes: list[Scope]
    created_at: dt.datetime | None
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None


class TokensOut(Strict):
    tokens: list[TokenOut]


class NewTokenOut(TokenOut):
    token: str = Field(description="the `bwt_...` credential; shown once, stored hashed")


class InvitationListed(Strict):
    id: uuid.UUID
    email: str
    role: Role
    created_at: dt.datetime | None
    expires_at: dt.datetime
    accepted_at: dt.datetime | None
    revoked_at: dt.datetime | None
    state: Literal["pending", "accepted", "revoked", "expired"]


class InvitationsOut(Strict):
    invitations: list[InvitationListed]


class SignUpIn(Strict):
    token: str = Field(max_length=200, description="the invitation's token, from its link")
    password: str = Field(min_length=12, max_length=1024)


class SignUpOut(Strict):
    user_id: uuid.UUID
    email: str
    tenant_id: uuid.UUID
    role: Role


class DeletedOut(Strict):
    deleted: bool

"""Who is acting, and the tenant-scoped query layer every handler and service uses.

Invariants:
- A `TenantScope` can only be built by `resolve_scope`, which checks membership (users)
  or token binding (API tokens) and the permission the caller needs.
- `scope.query(Model)` filters by the model's `TENANT_PATH`; `scope.get` turns "absent"
  and "another tenant's" into the same `NotFound`, so existence never leaks.
- A principal without access to a tenant gets `NotFound` for the tenant itself, never
  `Forbidden`; `Forbidden` only means "your role or token scope is too small here".
"""
from __future__ import annotations

import dataclasses
import uuid
from typing import Any, TypeVar

from tortoise.models import Model
from tortoise.queryset import QuerySet

from hub.errors import Forbidden, NotFound
from hub.models import Membership, Tenant

M = TypeVar("M", bound=Model)

# What each membership role may do. Token scopes use the same words.
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": frozenset({"read"}),
    "operator": frozenset({"read", "write", "deploy"}),
    "admin": frozenset({"read", "write", "deploy", "admin"}),
    "owner": frozenset({"read", "write", "deploy", "admin", "billing"}),
}


@dataclasses.dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: a browser user (session) or an API token."""

    actor: str  # "user:<email>" | "token:<id>" | "agent:<id>" | "cli"
    address: str = ""
    user_id: uuid.UUID | None = None
    is_platform_admin: bool = False
    token_tenant_id: uuid.UUID | None = None
    token_scopes: frozenset[str] = frozenset()


@dataclasses.dataclass(frozen=True, slots=True)
class TenantScope:
    tenant_id: uuid.UUID
    principal: Principal
    permissions: frozenset[str]

    @property
    def actor(self) -> str:
        return self.principal.actor

    @property
    def address(self) -> str:
        return self.principal.address

    def query(self, model: type[M]) -> QuerySet[M]:
        path = getattr(model, "TENANT_PATH", None)
        if path is None:
            raise TypeError(f"{model.__name__} is not tenant-owned")
        return model.filter(**{path: self.tenant_id})

    async def get(self, model: type[M], object_id: Any, what: str | None = None) -> M:
        what = what or model.__name__.lower()
        try:
            obj = await self.query(model).get_or_none(pk=object_id)
        except (ValueError, TypeError):  # a malformed id is just another absent object
            obj = None
        if obj is None:
            raise NotFound(what)
        return obj

    def require(self, permission: str) -> None:
        if permission not in self.permissions:
            raise Forbidden(f"this needs the {permission!r} permission")


async def resolve_scope(principal: Principal, tenant_id: uuid.UUID, need: str) -> TenantScope:
    """The scope for `principal` acting in `tenant_id` with permission `need`.

    Raises NotFound when the principal has no access to the tenant at all,
    Forbidden when it has access but lacks `need`.
    """
    if principal.token_tenant_id is not None:
        if principal.token_tenant_id != tenant_id:
            raise NotFound("tenant")
        # Any token may read its tenant; more needs the scope.
        permissions = principal.token_scopes | {"read"}
    elif principal.user_id is not None:
        # A closed tenant (hub.services.erasure) is gone for everyone.
        membership = await Membership.get_or_none(user_id=principal.user_id, tenant_id=tenant_id,
                                                  tenant__closed_at__isnull=True)
        if membership is None:
            if not (principal.is_platform_admin and await Tenant.exists(id=tenant_id, closed_at__isnull=True)):
                raise NotFound("tenant")
            permissions = ROLE_PERMISSIONS["owner"]
        else:
            permissions = ROLE_PERMISSIONS[membership.role]
    elif principal.actor == "cli":
        permissions = ROLE_PERMISSIONS["owner"]
    else:
        raise NotFound("tenant")
    scope = TenantScope(tenant_id=tenant_id, principal=principal, permissions=permissions)
    scope.require(need)
    return scope

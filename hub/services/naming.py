"""Renaming and deleting a tenant's named things (policies, lists, agents) the same way.

One place for the rules every rename or delete follows, so the API and the panel (and each
kind of thing) cannot drift: the caller's permission, a name free within the tenant, and an
audit entry in the transaction that makes the change. What is particular to a kind (what
stops its deletion) is the `refuse` check its own service passes in.

Raises Conflict (a name in use, or `refuse`'s reason) and Forbidden (no permission).
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.models import Model
from tortoise.transactions import in_transaction

from hub.errors import Conflict
from hub.runtime import Runtime
from hub.services.scope import TenantScope


async def rename(rt: Runtime, scope: TenantScope, row: Model, new_name: str, *, kind: str,
                 field: str = "name", unique: bool = True, permission: str = "write") -> Model:
    """Give `row` the name `new_name` (its `field`), free among the tenant's `kind`s."""
    scope.require(permission)
    old = getattr(row, field)
    if new_name == old:
        return row
    try:
        async with in_transaction() as conn:
            if unique and await scope.query(type(row)).filter(**{field: new_name}).using_db(conn).exists():
                raise Conflict(f"a {kind} with this name exists")
            await type(row).filter(id=row.id).using_db(conn).update(**{field: new_name})
            await rt.audit.append(actor=scope.actor, action=f"{kind}.rename", tenant_id=scope.tenant_id,
                                  target=str(row.id), address=scope.address,
                                  details={"from": old, "to": new_name}, using_db=conn)
    except IntegrityError:  # a concurrent rename took the name between the check and the update
        raise Conflict(f"a {kind} with this name exists") from None
    setattr(row, field, new_name)
    return row


async def delete(rt: Runtime, scope: TenantScope, row: Model, *, kind: str, label: str,
                 refuse: Callable[[], Awaitable[str | None]] | None = None,
                 permission: str = "write", details: dict[str, Any] | None = None,
                 children: Callable[[BaseDBAsyncClient], Awaitable[Any]] | None = None) -> None:
    """Delete `row` unless `refuse` gives a reason. Its children go by the models'
    cascades, and `children(conn)` deletes those with none, after `row` in its transaction."""
    scope.require(permission)
    reason = await refuse() if refuse else None
    if reason:
        raise Conflict(reason)
    async with in_transaction() as conn:
        await type(row).filter(id=row.id).using_db(conn).delete()
        if children is not None:
            await children(conn)
        await rt.audit.append(actor=scope.actor, action=f"{kind}.delete", tenant_id=scope.tenant_id,
                              target=str(row.id), address=scope.address,
                              details={"name": label, **(details or {})}, using_db=conn)

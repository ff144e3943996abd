"""Privacy: a tenant's or a person's own data as one ZIP archive (hub.services.export)."""
from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from quart import Blueprint, Response, request
from quart_schema import tag_blueprint

from hub.api_schemas.common import TENANT_ERRORS, raw_response, responds
from hub.api_schemas.privacy import ClosedOut, RetentionOut
from hub.errors import Unauthenticated
from hub.models import ErasureRequest
from hub.services import accounts, erasure, export, retention
from hub.services.scope import TenantScope
from hub.services.slots import StreamSlots
from hub.web import current_session, principal, rt, tenant_route

bp = Blueprint("privacy", __name__)
tag_blueprint(bp, ["privacy"])

# One export at a time per caller (per process): each reads the whole of a tenant and
# fills a temporary file, so a loop of requests must not stack them up.
EXPORTS = StreamSlots()
ARCHIVE = ("a ZIP archive: README.txt, and per kind of data NAME.json (a JSON array), NAME.csv "
           "(the same rows) and schemas/NAME.schema.json (the JSON Schema of NAME.json)")


async def _answer(actor: str, build: Callable[[], Awaitable[tuple[Any, str]]]) -> Response:
    slot = EXPORTS.take(actor, 1, "exports")
    try:
        spool, filename = await build()
    except BaseException:
        slot.release()
        raise

    async def sent():
        try:
            async for chunk in export.chunks(spool):
                yield chunk
        finally:
            slot.release()

    body = sent()
    weakref.finalize(body, spool.close)  # an answer never sent still removes its file...
    weakref.finalize(body, slot.release)  # ...and gives its slot back
    response = Response(body, content_type="application/zip")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    response.timeout = None
    return response


@bp.get("/api/v1/tenants/<uuid:tenant_id>/export")
@raw_response("application/zip", ARCHIVE, errors=(401, 403, 404, 429))
@tenant_route("admin")
async def tenant_export(scope: TenantScope) -> Response:
    """Everything the tenant holds but secrets; recorded in its audit log (`privacy.export`)."""
    return await _answer(scope.actor, lambda: export.export_tenant(rt(), scope))


@bp.get("/auth/me/export")
async def my_export() -> Response:
    """The signed-in person's own data: account, memberships, sessions, tokens' metadata and
    the audit entries where they are the actor."""
    p = await principal()
    if p.user_id is None:
        raise Unauthenticated("this is for signed-in users")
    return await _answer(p.actor, lambda: export.export_user(rt(), p.user_id, p.actor, p.address))


async def fresh_session() -> Any:
    """The signed-in person's session, with a fresh proof (accounts.require_fresh): an API
    token never closes an account or a tenant. Raises Unauthenticated, Forbidden."""
    p = await principal()
    found = await current_session()
    if p.user_id is None or found is None or request.headers.get("Authorization"):
        raise Unauthenticated("this is for signed-in users")
    accounts.require_fresh(found[1])
    return found[1]


def closed_json(req: ErasureRequest, tenants_closed: list[Any]) -> dict[str, Any]:
    return {"erasure": {"id": req.id, "kind": req.kind, "due_at": req.due_at, "state": req.state},
            "tenants_closed": tenants_closed}


@bp.post("/auth/me/close")
async def close_me() -> tuple[dict[str, Any], int]:
    """Close your account (a fresh proof first: POST /auth/reauth): you are signed out
    everywhere, and the account is erased within 30 days; tenants where you are the only
    member close with it. 409 while you are the last owner of a tenant others use."""
    session = await fresh_session()
    p = await principal()
    req, closed = await erasure.close_account(rt(), session.user, session, address=p.address)
    return closed_json(req, closed), 202


@bp.post("/api/v1/tenants/<uuid:tenant_id>/close")
@responds(ClosedOut, 202, errors=(*TENANT_ERRORS, 409))
@tenant_route("billing")
async def close_tenant(scope: TenantScope) -> tuple[dict[str, Any], int]:
    """Close the tenant (an owner, signed in, with a fresh proof): gone for its members at
    once, its tokens and agents revoked; erased within 30 days but its minimised billing
    record, which the law keeps 10 years."""
    await fresh_session()
    req = await erasure.close_tenant(rt(), scope.tenant_id, actor=scope.actor, address=scope.address)
    return closed_json(req, [scope.tenant_id]), 202


@bp.get("/api/v1/privacy/retention")
@responds(RetentionOut, errors=(401,))
async def retention_table() -> dict[str, Any]:
    """How long the hub keeps each kind of data (the settings in force)."""
    await principal()
    return {"retention": retention.table(rt())}

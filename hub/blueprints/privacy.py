"""Privacy: a tenant's or a person's own data as one ZIP archive (hub.services.export)."""
from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from quart import Blueprint, Response
from quart_schema import tag_blueprint

from hub.api_schemas.common import raw_response
from hub.errors import Unauthenticated
from hub.services import export
from hub.services.scope import TenantScope
from hub.services.slots import StreamSlots
from hub.web import principal, rt, tenant_route

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

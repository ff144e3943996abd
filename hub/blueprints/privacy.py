"""Privacy: a tenant's or a person's own data as one ZIP archive (hub.services.export)."""
from __future__ import annotations

import weakref

from quart import Blueprint, Response
from quart_schema import tag_blueprint

from hub.api_schemas.common import raw_response
from hub.errors import Unauthenticated
from hub.services import export
from hub.services.scope import TenantScope
from hub.web import principal, rt, tenant_route

bp = Blueprint("privacy", __name__)
tag_blueprint(bp, ["privacy"])

ARCHIVE = ("a ZIP archive: README.txt, and per kind of data NAME.json (a JSON array), NAME.csv "
           "(the same rows) and schemas/NAME.schema.json (the JSON Schema of NAME.json)")


def _answer(spool, filename: str) -> Response:
    body = export.chunks(spool)
    weakref.finalize(body, spool.close)  # an answer never sent still removes its file
    response = Response(body, content_type="application/zip")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    response.timeout = None
    return response


@bp.get("/api/v1/tenants/<uuid:tenant_id>/export")
@raw_response("application/zip", ARCHIVE)
@tenant_route("admin")
async def tenant_export(scope: TenantScope) -> Response:
    """Everything the tenant holds but secrets; recorded in its audit log (`privacy.export`)."""
    return _answer(*await export.export_tenant(rt(), scope))


@bp.get("/auth/me/export")
async def my_export() -> Response:
    """The signed-in person's own data: account, memberships, sessions, tokens' metadata and
    the audit entries where they are the actor."""
    p = await principal()
    if p.user_id is None:
        raise Unauthenticated("this is for signed-in users")
    return _answer(*await export.export_user(rt(), p.user_id, p.actor, p.address))

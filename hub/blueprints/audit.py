"""A tenant's audit entries (read-only: the log is append-only)."""
from __future__ import annotations

from typing import Any

from quart import Blueprint
from quart_schema import tag_blueprint, validate_querystring

from hub.api_schemas.audit import AuditOut, AuditQuery, AuditVerifyOut
from hub.api_schemas.common import INPUT_ERRORS, responds
from hub.services import audit_search
from hub.services.scope import TenantScope
from hub.web import rt, tenant_route

bp = Blueprint("audit", __name__, url_prefix="/api/v1/tenants/<uuid:tenant_id>/audit")
tag_blueprint(bp, ["audit"])


@bp.get("")
@responds(AuditOut, errors=INPUT_ERRORS)
@tenant_route("read")
@validate_querystring(AuditQuery)
async def index(scope: TenantScope, query_args: AuditQuery) -> dict[str, Any]:
    """The newest entries first, by action (or `prefix.`), actor and time."""
    q = query_args
    rows = await audit_search.select(scope, audit_search.Filters(
        action=q.action, actor=q.actor, since=q.since, until=q.until, before_seq=q.before_seq)).limit(q.limit)
    return {"entries": [
        {"seq": e.seq, "at": e.at, "actor": e.actor, "action": e.action, "target": e.target,
         "address": e.address, "details": e.details, "hash": e.hash}
        for e in rows
    ]}


@bp.get("/verify")
@responds(AuditVerifyOut)
@tenant_route("read")
async def verify(scope: TenantScope) -> dict[str, Any]:
    """Verify this tenant's entries: their keyed hashes, the chain's links, and that the
    log still reaches the last signed checkpoint (keep that to compare later)."""
    log = rt().audit
    checked, problems = await log.verify(tenant_id=scope.tenant_id)
    return {"ok": not problems, "checked": checked,
            "problems": [{"seq": p.seq, "what": p.what} for p in problems[:100]],
            "checkpoint": log.last_checkpoint()}

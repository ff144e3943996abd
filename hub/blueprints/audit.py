"""A tenant's audit entries (read-only: the log is append-only)."""
from __future__ import annotations

from pydantic import Field
from quart import Blueprint, Response, jsonify
from quart_schema import validate_querystring

from hub.blueprints.schema import Strict
from hub.models import AuditEntry
from hub.services.scope import TenantScope
from hub.web import tenant_route

bp = Blueprint("audit", __name__, url_prefix="/api/v1/tenants/<uuid:tenant_id>/audit")


class AuditQuery(Strict):
    before_seq: int | None = Field(default=None, ge=1)
    limit: int = Field(default=100, ge=1, le=1000)


@bp.get("")
@tenant_route("read")
@validate_querystring(AuditQuery)
async def index(scope: TenantScope, query_args: AuditQuery) -> Response:
    qs = scope.query(AuditEntry)
    if query_args.before_seq is not None:
        qs = qs.filter(seq__lt=query_args.before_seq)
    rows = await qs.order_by("-seq").limit(query_args.limit)
    return jsonify({"entries": [
        {"seq": e.seq, "at": e.at.isoformat(), "actor": e.actor, "action": e.action, "target": e.target,
         "address": e.address, "details": e.details, "hash": e.hash}
        for e in rows
    ]})

"""IP lists in the public API: create, change, import, browse, deltas."""
from __future__ import annotations

from typing import Any

from quart import Blueprint, request
from quart_schema import tag_blueprint, validate_querystring, validate_request

from hub.api_schemas.common import BODY_ERRORS, INPUT_ERRORS, raw_request, responds
from hub.api_schemas.lists import (
    ChangeIn,
    ChangeOut,
    EntriesOut,
    ImportQuery,
    ListDetail,
    ListIn,
    ListOut,
    ListsOut,
    ListUpdate,
    PageQuery,
    SinceQuery,
)
from hub.errors import InvalidInput
from hub.models import IpEntry, IpList
from hub.services import lists
from hub.services.scope import TenantScope
from hub.web import rt, tenant_route

bp = Blueprint("lists", __name__, url_prefix="/api/v1/tenants/<uuid:tenant_id>/lists")
tag_blueprint(bp, ["lists"])


def list_json(ip_list: IpList) -> dict[str, Any]:
    return {"id": ip_list.id, "name": ip_list.name, "kind": ip_list.kind, "revision": ip_list.revision}


@bp.post("")
@responds(ListOut, 201, errors=(*BODY_ERRORS, 409))
@tenant_route("write")
@validate_request(ListIn)
async def create(scope: TenantScope, data: ListIn) -> tuple[dict[str, Any], int]:
    """A new, empty allow or deny list."""
    return list_json(await lists.create_list(rt(), scope, data.name, data.kind)), 201


@bp.get("")
@responds(ListsOut)
@tenant_route("read")
async def index(scope: TenantScope) -> dict[str, Any]:
    """Every list, by name."""
    return {"lists": [list_json(x) for x in await scope.query(IpList).order_by("name")]}


@bp.get("/<uuid:list_id>")
@responds(ListDetail)
@tenant_route("read")
async def get(scope: TenantScope, ip_list: IpList) -> dict[str, Any]:
    """One list with its revision and size."""
    count = await IpEntry.filter(ip_list_id=ip_list.id, removed_rev__isnull=True).count()
    return {**list_json(ip_list), "entries": count}


@bp.get("/<uuid:list_id>/entries")
@responds(EntriesOut, errors=INPUT_ERRORS)
@tenant_route("read")
@validate_querystring(PageQuery)
async def entries(scope: TenantScope, ip_list: IpList, query_args: PageQuery) -> dict[str, Any]:
    """A page of the live entries."""
    rows = await IpEntry.filter(ip_list_id=ip_list.id, removed_rev__isnull=True).order_by("id") \
        .offset(query_args.offset).limit(query_args.limit).values("network", "expires_at", "comment")
    return {"entries": rows, "revision": ip_list.revision}


@bp.post("/<uuid:list_id>/entries")
@responds(ChangeOut, errors=BODY_ERRORS)
@tenant_route("write")
@validate_request(ChangeIn)
async def change(scope: TenantScope, ip_list: IpList, data: ChangeIn) -> dict[str, Any]:
    """Add (or update) and remove entries in one new revision."""
    try:
        add = [lists.Entry(lists.parse_network(e.network), e.expires_at, e.comment) for e in data.add]
        return await lists.change(rt(), scope, ip_list, add, data.remove)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


@bp.post("/<uuid:list_id>/import")
@responds(ChangeOut, errors=BODY_ERRORS)
@raw_request("text/plain", "text/csv", description="text: `network [# comment]` a line; csv: "
             "`network,expires_at,comment`. All or nothing: bad lines are reported by number.")
@tenant_route("write")
@validate_querystring(ImportQuery)
async def import_(scope: TenantScope, ip_list: IpList, query_args: ImportQuery) -> dict[str, Any]:
    """Import entries from plain text or CSV in the body, in one new revision."""
    # Streamed: read a chunk at a time and parsed a line at a time off the event loop.
    return await lists.import_entries(rt(), scope, ip_list, request.body, query_args.format, query_args.replace)


import_.bulwark_bulk_body = True  # type: ignore[attr-defined]


@bp.get("/<uuid:list_id>/changes")
@responds(ListUpdate, errors=INPUT_ERRORS)
@tenant_route("read")
@validate_querystring(SinceQuery)
async def changes(scope: TenantScope, ip_list: IpList, query_args: SinceQuery) -> dict[str, Any]:
    """What a holder of revision `since` lacks: nothing, a delta, or a snapshot."""
    return await lists.update_for(ip_list, query_args.since)

"""IP lists in the public API: create, change, import, browse, deltas."""
from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, request
from quart_schema import tag_blueprint, validate_querystring, validate_request

from hub.api_schemas.common import BODY_ERRORS, INPUT_ERRORS, TENANT_ERRORS, Deleted, RenameIn, raw_request, raw_response, responds
from hub.api_schemas.lists import (
    ChangeIn,
    ChangeOut,
    EntriesOut,
    ExportQuery,
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
from hub.services import list_browse, lists
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
    """A page of the live entries, optionally those whose network starts with `q`."""
    q = query_args
    found = await list_browse.page(ip_list, list_browse.clean_search(q.q), q.offset, q.limit)
    return {"entries": found.entries, "revision": ip_list.revision, "total": found.total}


@bp.get("/<uuid:list_id>/export")
@raw_response("text/csv", "`network,expires_at,comment` with a header line, the import's CSV form; a cell "
              "that a spreadsheet would run as a formula (= + - @ tab CR first) starts with an apostrophe",
              errors=INPUT_ERRORS)
@tenant_route("read")
@validate_querystring(ExportQuery)
async def export(scope: TenantScope, ip_list: IpList, query_args: ExportQuery) -> Response:
    """The live entries as CSV, streamed."""
    return csv_download(ip_list, list_browse.clean_search(query_args.q))


def csv_download(ip_list: IpList, search: str) -> Response:
    """The export as an attachment named after the list (the panel's download too)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in ip_list.name)[:80] or "list"
    response = Response(list_browse.export_csv(ip_list, search), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{safe}.csv"'
    response.timeout = None  # a million rows take longer than the default response timeout
    return response


@bp.patch("/<uuid:list_id>")
@responds(ListOut, errors=(*BODY_ERRORS, 409))
@tenant_route("write")
@validate_request(RenameIn)
async def rename(scope: TenantScope, ip_list: IpList, data: RenameIn) -> dict[str, Any]:
    """Rename the list (409 while a deployed policy names it)."""
    return list_json(await lists.rename_list(rt(), scope, ip_list, data.name))


@bp.delete("/<uuid:list_id>")
@responds(Deleted, errors=(*TENANT_ERRORS, 409))
@tenant_route("write")
async def delete(scope: TenantScope, ip_list: IpList) -> dict[str, Any]:
    """Delete the list and its entries (409 while a deployed policy names it)."""
    await lists.delete_list(rt(), scope, ip_list)
    return {"id": ip_list.id, "deleted": True}


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

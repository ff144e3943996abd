"""IP lists in the public API: create, change, import, browse, deltas."""
from __future__ import annotations

from pydantic import Field
from quart import Blueprint, Response, jsonify, request
from quart_schema import validate_querystring, validate_request

from hub.blueprints.schema import Strict
from hub.errors import InvalidInput
from hub.models import IpEntry, IpList
from hub.services import lists
from hub.services.scope import TenantScope
from hub.web import rt, tenant_route

bp = Blueprint("lists", __name__, url_prefix="/api/v1/tenants/<uuid:tenant_id>/lists")


class ListIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    kind: str = Field(pattern="^(allow|deny)$")


class EntryIn(Strict):
    network: str = Field(max_length=64)
    expires_at: int | None = Field(default=None, ge=0)
    comment: str = Field(default="", max_length=200)


class ChangeIn(Strict):
    add: list[EntryIn] = Field(default_factory=list, max_length=10000)
    remove: list[str] = Field(default_factory=list, max_length=10000)


class ImportQuery(Strict):
    format: str = Field(default="text", pattern="^(text|csv)$")
    replace: bool = False


class PageQuery(Strict):
    offset: int = Field(default=0, ge=0)
    limit: int = Field(default=1000, ge=1, le=10000)


class SinceQuery(Strict):
    since: int | None = Field(default=None, ge=0)


def list_json(ip_list: IpList) -> dict:
    return {"id": str(ip_list.id), "name": ip_list.name, "kind": ip_list.kind, "revision": ip_list.revision}


@bp.post("")
@tenant_route("write")
@validate_request(ListIn)
async def create(scope: TenantScope, data: ListIn) -> tuple[Response, int]:
    return jsonify(list_json(await lists.create_list(rt(), scope, data.name, data.kind))), 201


@bp.get("")
@tenant_route("read")
async def index(scope: TenantScope) -> Response:
    return jsonify({"lists": [list_json(x) for x in await scope.query(IpList).order_by("name")]})


@bp.get("/<uuid:list_id>")
@tenant_route("read")
async def get(scope: TenantScope, ip_list: IpList) -> Response:
    count = await IpEntry.filter(ip_list_id=ip_list.id, removed_rev__isnull=True).count()
    return jsonify({**list_json(ip_list), "entries": count})


@bp.get("/<uuid:list_id>/entries")
@tenant_route("read")
@validate_querystring(PageQuery)
async def entries(scope: TenantScope, ip_list: IpList, query_args: PageQuery) -> Response:
    rows = await IpEntry.filter(ip_list_id=ip_list.id, removed_rev__isnull=True).order_by("id") \
        .offset(query_args.offset).limit(query_args.limit).values("network", "expires_at", "comment")
    return jsonify({"entries": rows, "revision": ip_list.revision})


@bp.post("/<uuid:list_id>/entries")
@tenant_route("write")
@validate_request(ChangeIn)
async def change(scope: TenantScope, ip_list: IpList, data: ChangeIn) -> Response:
    try:
        add = [lists.Entry(lists.parse_network(e.network), e.expires_at, e.comment) for e in data.add]
        result = await lists.change(rt(), scope, ip_list, add, data.remove)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    return jsonify(result)


@bp.post("/<uuid:list_id>/import")
@tenant_route("write")
@validate_querystring(ImportQuery)
async def import_(scope: TenantScope, ip_list: IpList, query_args: ImportQuery) -> Response:
    """Plain text or CSV in the body; all-or-nothing, bad lines reported by number."""
    body = await request.get_data(as_text=False)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("the body must be UTF-8 text") from None
    return jsonify(await lists.import_entries(rt(), scope, ip_list, text, query_args.format, query_args.replace))


import_.bulwark_bulk_body = True  # type: ignore[attr-defined]


@bp.get("/<uuid:list_id>/changes")
@tenant_route("read")
@validate_querystring(SinceQuery)
async def changes(scope: TenantScope, ip_list: IpList, query_args: SinceQuery) -> Response:
    return jsonify(await lists.update_for(ip_list, query_args.since))

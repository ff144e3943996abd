"""A list's page: search and paging (hub.services.list_browse), add with a time to live,
import with each bad line shown by number, export as CSV, rename and delete.

An import that fails answers with the page itself (400) and its errors, not a redirect:
the located errors (up to a thousand) would not fit in the flash cookie.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from quart import Response, flash, render_template, request

from hub.errors import InvalidInput
from hub.models import IpList
from hub.panel import bp
from hub.panel.pages import (
    PAGE_SIZE, Named, _back, _form, _nonempty, _page, refused_back,
)
from hub.services import list_browse, lists
from hub.web import rt

SHOWN_ERRORS = 100
TTL_CHOICES = {"": None, "1h": 3600, "1d": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
_CHUNK = 1 << 16


async def _render(tenant_id: uuid.UUID, list_id: uuid.UUID, status: int = 200, **extra: Any) -> tuple[str, int]:
    scope, ctx = await _page(tenant_id)
    ip_list = await scope.get(IpList, list_id, "list")
    search = list_browse.clean_search(request.args.get("q"))
    args = request.args
    found = await list_browse.window(ip_list, search, after=list_browse.parse_key(search, args.get("after")),
                                     before=list_browse.parse_key(search, args.get("before")),
                                     last=args.get("last") == "1", limit=PAGE_SIZE)
    return await render_template("panel/list.html", **ctx, ip_list=ip_list, entries=found.entries,
                                 total=found.total, found=found, q=search, now=int(time.time()),
                                 ttl_choices=list(TTL_CHOICES), can_write="write" in scope.permissions,
                                 **extra), status


@bp.get("/t/<uuid:tenant_id>/lists/<uuid:list_id>")
async def list_page(tenant_id: uuid.UUID, list_id: uuid.UUID) -> tuple[str, int]:
    return await _render(tenant_id, list_id)


@bp.post("/t/<uuid:tenant_id>/lists/<uuid:list_id>/entries")
async def list_add(tenant_id: uuid.UUID, list_id: uuid.UUID) -> Response:
    scope, _ = await _page(tenant_id, "write")
    ip_list = await scope.get(IpList, list_id, "list")
    form = await _form()
    async with refused_back("panel.list_page", tenant_id=tenant_id, list_id=list_id) as refused:
        try:
            network = lists.parse_network(form.get("network", "")[:64])
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        if form.get("ttl", "") not in TTL_CHOICES:
            raise InvalidInput("choose a time to live from the list")
        ttl = TTL_CHOICES[form.get("ttl", "")]
        expires = int(time.time()) + ttl if ttl else None
        await lists.change(rt(), scope, ip_list, [lists.Entry(network, expires, form.get("comment", "")[:200])], [])
        await flash(f"Added {network}" + (f" for {form['ttl']}." if ttl else "."))
    return refused.response or _back("panel.list_page", tenant_id=tenant_id, list_id=list_id)


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), _CHUNK):
        yield data[i:i + _CHUNK]


@bp.post("/t/<uuid:tenant_id>/lists/<uuid:list_id>/import")
async def list_import(tenant_id: uuid.UUID, list_id: uuid.UUID) -> Response | tuple[str, int]:
    scope, _ = await _page(tenant_id, "write")
    ip_list = await scope.get(IpList, list_id, "list")
    form, files = await request.form, await request.files
    upload = files.get("file")
    data = upload.read() if upload is not None and upload.filename else form.get("text", "").encode()
    fmt = form.get("format", "text")
    if fmt not in ("text", "csv"):
        raise InvalidInput("format must be text or csv")
    try:
        done = await lists.import_entries(rt(), scope, ip_list, _chunks(data), fmt, form.get("replace") == "1")
    except InvalidInput as exc:
        details = exc.details if isinstance(exc.details, list) else []
        return await _render(tenant_id, list_id, 400, import_error=exc.message,
                             import_errors=details[:SHOWN_ERRORS], import_more=max(0, len(details) - SHOWN_ERRORS),
                             import_text=form.get("text", "")[:200_000], import_format=fmt)
    await flash(f"Imported: {done['added']:,} added, {done['removed']:,} removed; "
                f"the list holds {done['entries']:,} entries (revision {done['revision']}).")
    return _back("panel.list_page", tenant_id=tenant_id, list_id=list_id)


@bp.get("/t/<uuid:tenant_id>/lists/<uuid:list_id>/export.csv")
async def list_export(tenant_id: uuid.UUID, list_id: uuid.UUID) -> Response:
    from hub.blueprints.lists import csv_download

    scope, _ = await _page(tenant_id)
    ip_list = await scope.get(IpList, list_id, "list")
    return csv_download(ip_list, list_browse.clean_search(request.args.get("q")))


LIST = Named(IpList, "list", "panel.list_page", "list_id", "panel.lists_index", lists.rename_list, lists.delete_list,
             label=lambda x: x.name, refuse_name=_nonempty("a list"),
             renamed="Renamed to {name}: policies name it so from now on.",
             ).routes("/t/<uuid:tenant_id>/lists/<uuid:list_id>")

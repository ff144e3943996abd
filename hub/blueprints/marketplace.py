"""The marketplace in the public API: browse and read templates (any signed-in caller),
publish (platform operators), preview and install into a tenant's library."""
from __future__ import annotations

from typing import Any

from quart import Blueprint
from quart_schema import tag_blueprint, validate_querystring, validate_request

from hub.api_schemas.common import BODY_ERRORS, responds
from hub.api_schemas.market import (
    BrowseQuery,
    LibraryEntryOut,
    InstallIn,
    PreviewIn,
    PreviewOut,
    PublishIn,
    TemplateDetail,
    TemplatesOut,
    TemplateSource,
)
from hub.models import TemplateVersion
from hub.services import library, marketplace
from hub.services.scope import TenantScope
from hub.web import principal, rt, tenant_route

bp = Blueprint("marketplace", __name__, url_prefix="/api/v1")
tag_blueprint(bp, ["marketplace"])
SLUG_PATH = "/marketplace/templates/<string(maxlength=63):slug>"


async def _detail(slug: str, version: int | None = None, *, source: bool = False) -> dict[str, Any]:
    row, v, template = await marketplace.version_of(slug, version)
    numbers = await TemplateVersion.filter(template_id=row.id).order_by("version").values_list("version", flat=True)
    out = {**marketplace.template_json(row, v, template), "versions": list(numbers)}
    if source:
        out["source"] = v.source
    return out


@bp.get("/marketplace/templates")
@responds(TemplatesOut, errors=(400, 401))
@validate_querystring(BrowseQuery)
async def browse(query_args: BrowseQuery) -> dict[str, Any]:
    """Every published template (latest versions), searched by words and a tag."""
    await principal()
    rows = await marketplace.browse(query_args.q, query_args.tag)
    return {"templates": [marketplace.template_json(t) for t in rows]}


@bp.post("/marketplace/templates")
@responds(TemplateDetail, 201, errors=(400, 401, 403, 409, 413, 422, 503))
@validate_request(PublishIn)
async def publish(data: PublishIn) -> tuple[dict[str, Any], int]:
    """Publish a template version (platform operators). It is refused (422, the failing
    vector named) unless, for its defaults and every boundary value, it checks, its expect
    lines hold in the reference evaluator and in the guard (BPF_PROG_TEST_RUN)."""
    v = await marketplace.publish(rt(), await principal(), data.source)
    template = await v.template
    return await _detail(template.slug, v.version), 201


@bp.get(SLUG_PATH)
@responds(TemplateDetail, errors=(401, 404))
async def get(slug: str) -> dict[str, Any]:
    """A template's latest version: the page of why, its parameters, its versions."""
    await principal()
    return await _detail(slug)


@bp.get(SLUG_PATH + "/versions/<int:version>")
@responds(TemplateSource, errors=(401, 404))
async def version(slug: str, version: int) -> dict[str, Any]:
    """One version with the template file as published."""
    await principal()
    return await _detail(slug, version, source=True)


@bp.post("/tenants/<uuid:tenant_id>/marketplace/preview")
@responds(PreviewOut, errors=BODY_ERRORS + (422,))
@tenant_route("read")
@validate_request(PreviewIn)
async def preview(scope: TenantScope, data: PreviewIn) -> dict[str, Any]:
    """Render a template with parameters: the policy, the checker's findings (with this
    hub's lockout guard), `explain`, and the diff against what an agent runs."""
    return await marketplace.preview(rt(), scope, data.slug, data.version, data.parameters, data.agent_id)


@bp.post("/tenants/<uuid:tenant_id>/marketplace/install")
@responds(LibraryEntryOut, 201, errors=BODY_ERRORS + (409, 422))
@tenant_route("write")
@validate_request(InstallIn)
async def install(scope: TenantScope, data: InstallIn) -> tuple[dict[str, Any], int]:
    """Render and save as a new policy in the tenant's library, which records the
    template version and the parameters."""
    tags = library.clean_tags(data.tags)
    policy, entry = await marketplace.install(rt(), scope, data.slug, data.version, data.parameters,
                                              data.name, tags, data.description)
    return library.entry_json(policy, entry), 201


"""The panel's marketplace and library pages, over hub/services/marketplace and library.

A preview is a GET (its parameters in the query string), so a rendered template is a
URL a person can bookmark and share; installing, tagging, cloning, upgrading and
deploying are form POSTs answered with a redirect.
"""
from __future__ import annotations

import re
import uuid
from typing import Any

from markupsafe import Markup, escape
from quart import Response, flash, render_template, request

from hub.errors import InvalidInput
from hub.models import Agent, Policy, PolicyVersion, Template
from hub.panel import bp
from hub.panel.pages import _back, _form, _int_arg, _page, refused_back
from hub.services import deployments, library, marketplace
from hub.web import rt

PARAM = "p."
MAX_QUERY = 100


def _parameters(values: Any) -> dict[str, str]:
    """Form or query fields `p.NAME` as template parameters."""
    return {k[len(PARAM):][:40]: v for k, v in list(values.items())[:200] if k.startswith(PARAM)}


def diff_lines(text: str | None) -> list[tuple[str, str]]:
    """A unified diff as (css class, line) for the page."""
    kinds = {"+": "add", "-": "del", "@": "hunk"}
    return [(kinds.get(line[:1], "ctx") if not line.startswith(("+++", "---")) else "file", line)
            for line in (text or "").splitlines()]


def _inline(text: str) -> Markup:
    """`**bold**` and `code` of a template's page of why; everything else escaped."""
    out = str(escape(" ".join(text.split())))
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", out))


def why_blocks(text: str) -> list[tuple[str, Any]]:
    """The page of why as paragraphs and bullet lists (the little markdown it uses)."""
    blocks: list[tuple[str, Any]] = []
    for para in text.split("\n\n"):
        if para.lstrip().startswith("- "):
            items = [x for x in re.split(r"(?m)^\s*- ", para) if x.strip()]
            blocks.append(("ul", [_inline(x) for x in items]))
        elif para.strip():
            blocks.append(("p", _inline(para)))
    return blocks


@bp.get("/t/<uuid:tenant_id>/marketplace")
async def marketplace_index(tenant_id: uuid.UUID) -> str:
    _, ctx = await _page(tenant_id)
    q, tag = request.args.get("q", "")[:MAX_QUERY], request.args.get("tag", "")[:63]
    rows = await marketplace.browse(q, tag)
    tags = sorted({t for row in await Template.all() for t in row.tags})
    return await render_template("panel/marketplace.html", **ctx, templates=rows, q=q, tag=tag, tags=tags)


@bp.get("/t/<uuid:tenant_id>/marketplace/<string(maxlength=63):slug>")
async def template_page(tenant_id: uuid.UUID, slug: str) -> str:
    scope, ctx = await _page(tenant_id)
    version = _int_arg("version", 0) or None
    row, v, template = await marketplace.version_of(slug, version)
    given = _parameters(request.args)
    agents = await scope.query(Agent).filter(revoked_at__isnull=True).order_by("enrolled_at")
    agent = request.args.get("agent", "")
    preview, problems = None, {}
    if "preview" in request.args:
        try:
            preview = await marketplace.preview(rt(), scope, slug, v.version, given,
                                                uuid.UUID(agent) if agent else None)
        except InvalidInput as exc:
            problems = {d["parameter"]: d["message"] for d in exc.details or [] if isinstance(d, dict)} \
                or {"": exc.message}
        except ValueError:
            problems = {"": "choose an agent from the list"}
    return await render_template(
        "panel/template.html", **ctx, row=row, v=v, template=template, why=why_blocks(template.why),
        given=given, agents=agents,
        agent=agent, preview=preview, problems=problems, diff=diff_lines(preview and preview["diff"]),
        can_write="write" in scope.permissions)


@bp.post("/t/<uuid:tenant_id>/marketplace/<string(maxlength=63):slug>/install")
async def template_install(tenant_id: uuid.UUID, slug: str) -> Response:
    scope, _ = await _page(tenant_id, "write")
    form = await _form()
    version = int(form["version"]) if form.get("version", "").isdigit() and len(form["version"]) < 9 else None
    again = {f"{PARAM}{k}": v for k, v in _parameters(form).items()}
    async with refused_back("panel.template_page", tenant_id=tenant_id, slug=slug, preview="1", **again) as refused:
        tags = library.clean_tags([t for t in form.get("tags", "").replace(",", " ").split() if t][:32])
        policy, _ = await marketplace.install(rt(), scope, slug, version, _parameters(form),
                                              form.get("name", "")[:200].strip(), tags,
                                              form.get("description", "")[:500])
        await flash(f"Installed {slug} as {policy.name}.")
    return refused.response or _back("panel.library_entry", tenant_id=tenant_id, policy_id=policy.id)


@bp.get("/t/<uuid:tenant_id>/library")
async def library_index(tenant_id: uuid.UUID) -> str:
    scope, ctx = await _page(tenant_id)
    q, tag = request.args.get("q", "")[:MAX_QUERY], request.args.get("tag", "")[:32]
    found = await library.search(scope, q, tag)
    return await render_template("panel/library.html", **ctx, entries=[library.entry_json(p, e) for p, e in found],
                                 q=q, tag=tag)


@bp.get("/t/<uuid:tenant_id>/library/<uuid:policy_id>")
async def library_entry(tenant_id: uuid.UUID, policy_id: uuid.UUID) -> str:
    scope, ctx = await _page(tenant_id)
    policy = await scope.get(Policy, policy_id, "policy")
    entry = await library.entry_of(scope, policy)
    versions = await PolicyVersion.filter(policy_id=policy.id).order_by("-version")
    to_v = _int_arg("to", policy.latest_version)
    from_v = _int_arg("from", max(1, to_v - 1))
    compared = await library.diff(scope, policy, from_v, to_v) if policy.latest_version > 1 else None
    upgrade = None
    if entry is not None and entry.template_slug:
        row = await Template.get_or_none(slug=entry.template_slug)
        if row is not None and row.latest_version > (entry.template_version or 0):
            upgrade = await marketplace.upgrade_plan(scope, policy, row.latest_version)
    agents = await scope.query(Agent).filter(revoked_at__isnull=True).order_by("enrolled_at")
    others = [p for p in await scope.query(Policy).order_by("name") if p.id != policy.id]
    return await render_template(
        "panel/entry.html", **ctx, policy=policy, entry=library.entry_json(policy, entry), versions=versions,
        compared=compared, diff=diff_lines(compared and compared["diff"]), upgrade=upgrade,
        upgrade_diff=diff_lines(upgrade and upgrade["diff"]), agents=agents, others=others,
        can_write="write" in scope.permissions, can_deploy="deploy" in scope.permissions)


async def _entry_action(tenant_id: uuid.UUID, policy_id: uuid.UUID, need: str):
    scope, _ = await _page(tenant_id, need)
    return scope, await scope.get(Policy, policy_id, "policy"), await _form()


@bp.post("/t/<uuid:tenant_id>/library/<uuid:policy_id>/describe")
async def library_describe(tenant_id: uuid.UUID, policy_id: uuid.UUID) -> Response:
    scope, policy, form = await _entry_action(tenant_id, policy_id, "write")
    async with refused_back("panel.library_entry", tenant_id=tenant_id, policy_id=policy_id) as refused:
        await library.describe(rt(), scope, policy, form.get("tags", "").replace(",", " ").split()[:32],
                               form.get("description", "")[:500])
        await flash("Saved the tags and description.")
    return refused.response or _back("panel.library_entry", tenant_id=tenant_id, policy_id=policy_id)


@bp.post("/t/<uuid:tenant_id>/library/<uuid:policy_id>/clone")
async def library_clone(tenant_id: uuid.UUID, policy_id: uuid.UUID) -> Response:
    scope, policy, form = await _entry_action(tenant_id, policy_id, "write")
    async with refused_back("panel.library_entry", tenant_id=tenant_id, policy_id=policy_id) as refused:
        copy = await library.clone(rt(), scope, policy, None, form.get("name", "")[:200].strip())
        await flash(f"Cloned {policy.name} as {copy.name}.")
    return refused.response or _back("panel.library_entry", tenant_id=tenant_id, policy_id=copy.id)


@bp.post("/t/<uuid:tenant_id>/library/<uuid:policy_id>/upgrade")
async def library_upgrade(tenant_id: uuid.UUID, policy_id: uuid.UUID) -> Response:
    scope, policy, form = await _entry_action(tenant_id, policy_id, "write")
    async with refused_back("panel.library_entry", tenant_id=tenant_id, policy_id=policy_id) as refused:
        saved = await marketplace.upgrade(rt(), scope, policy, None)
        await flash(f"Upgraded: saved version {saved.version}.")
    return refused.response or _back("panel.library_entry", tenant_id=tenant_id, policy_id=policy_id)


@bp.post("/t/<uuid:tenant_id>/library/<uuid:policy_id>/deploy")
async def library_deploy(tenant_id: uuid.UUID, policy_id: uuid.UUID) -> Response:
    scope, policy, _ = await _entry_action(tenant_id, policy_id, "deploy")
    form = await request.form
    async with refused_back("panel.library_entry", tenant_id=tenant_id, policy_id=policy_id) as refused:
        try:
            agent_ids = [uuid.UUID(x) for x in form.getlist("agent")[:10000]]
            canaries = [uuid.UUID(x) for x in form.getlist("canary")[:1000]]
        except ValueError:
            raise InvalidInput("an agent id is malformed") from None
        raw = form.get("version", "")
        v = await library.version(policy, int(raw) if raw.isdigit() and len(raw) < 9 else None)
        d = await deployments.deploy_version(rt(), scope, v, agent_ids=agent_ids, labels=[], canary_ids=canaries,
                                             monitor=form.get("monitor") == "1")
        await flash(f"Deployed {policy.name} version {v.version} ({d.plan_digest[:12]}) to {len(agent_ids)} "
                    f"agent(s){f', {len(canaries)} canary first' if canaries else ''}.")
    return refused.response or _back("panel.deployments_index", tenant_id=tenant_id)

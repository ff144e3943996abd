"""The marketplace: templates published by platform operators, previewed and installed
by tenants into their library.

Invariants:
- A template version exists only if it passed the publication pipeline
  (`rules_dsl.publish.verify`) with the guard stage (`bpf.vectors.run_in_guard`,
  BPF_PROG_TEST_RUN): no guard on this hub (no root, no BPF) means no publishing (503),
  never publishing unverified. Versions only go up, and are immutable.
- Only platform operators (with 2FA: `Principal.is_platform_admin`) publish; every
  signed-in user and API token may browse.
- Installing renders the template with the tenant's parameters and saves the result as
  an ordinary policy (checked, compiled, lockout-guarded by `policies`), with a library
  entry that records the template version and the parameters.
"""
from __future__ import annotations

import asyncio
import difflib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from hub.errors import Conflict, Forbidden, InvalidInput, NotFound, Unavailable, Unprocessable
from hub.models import Agent, Deployment, LibraryEntry, Policy, PolicyVersion, Template, TemplateVersion
from hub.runtime import Runtime
from hub.services import policies
from hub.services.scope import Principal, TenantScope

MAX_TEMPLATE_CHARS = 128 * 1024  # rules_dsl.templates.MAX_TEMPLATE_CHARS (a test keeps them equal)
MAX_DIFF_LINES = 2000
# The guard is one loaded program per hub process: one publication at a time.
_PUBLISH = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bulwark-publish")


def _parse(source: str, filename: str = "template.toml"):
    from rules_dsl.errors import TemplateError
    from rules_dsl.templates import parse_template

    try:
        return parse_template(source, filename)
    except TemplateError as exc:
        raise InvalidInput(f"the template is not valid: {exc}",
                           details=[d.render() for d in exc.diagnostics]) from None


def _verify(template):
    from rules_dsl.publish import verify

    try:
        from bpf.vectors import run_in_guard
        return verify(template, run_in_guard)
    except OSError as exc:  # BpfError, or the native bindings missing
        raise Unavailable(f"this hub cannot load the guard to test the template ({exc}): "
                          "publish from a hub process that has root and BPF") from None
    except ImportError as exc:
        raise Unavailable(f"this hub has no guard to test the template with ({exc})") from None


async def publish(rt: Runtime, principal: Principal, source: str,
                  filename: str = "template.toml") -> TemplateVersion:
    """Publish a template version after it passes the pipeline. Raises Forbidden (not an
    operator), InvalidInput (not a template), Conflict (version not above the latest),
    Unprocessable (a vector failed: named in the message and `details`), Unavailable."""
    if not principal.is_platform_admin:
        raise Forbidden("publishing templates is for platform operators (with 2FA on)")
    if len(source) > MAX_TEMPLATE_CHARS:
        raise InvalidInput(f"a template may have at most {MAX_TEMPLATE_CHARS} characters")
    template = _parse(source, filename)
    existing = await Template.get_or_none(slug=template.slug)
    if existing is not None and template.version <= existing.latest_version:
        raise Conflict(f"{template.slug} is at version {existing.latest_version}: publish a higher version")
    report = await asyncio.get_running_loop().run_in_executor(_PUBLISH, _verify, template)
    if not report.publishable:
        failures = [f.render(template) for f in report.failures]
        raise Unprocessable(f"refused: {failures[0]}", details=failures[:100])
    summary = {"cases": list(report.cases), "vectors": report.vectors, "guard": report.guard_ran}
    try:
        async with in_transaction() as conn:
            row = existing or await Template.create(slug=template.slug, title=template.title,
                                                    summary=template.summary, tags=list(template.tags),
                                                    using_db=conn)
            updated = await Template.filter(id=row.id, latest_version__lt=template.version).using_db(conn).update(
                latest_version=template.version, title=template.title, summary=template.summary,
                tags=list(template.tags))
            if not updated:
                raise Conflict(f"{template.slug} already has version {template.version} or later")
            version = await TemplateVersion.create(template_id=row.id, version=template.version, source=source,
                                                   report=summary, published_by=principal.actor, using_db=conn)
            await rt.audit.append(actor=principal.actor, action="template.publish", target=template.slug,
                                  address=principal.address, details={"version": template.version,
                                                                      "vectors": report.vectors},
                                  using_db=conn)
    except IntegrityError:  # a concurrent publication of the same slug or version won
        raise Conflict(f"{template.slug} version {template.version} was published meanwhile") from None
    return version


async def browse(q: str = "", tag: str = "") -> list[Template]:
    rows = await Template.all().order_by("slug")
    q = q.lower()
    return [t for t in rows if (not q or q in t.slug or q in t.title.lower() or q in t.summary.lower())
            and (not tag or tag in t.tags)]


async def version_of(slug: str, version: int | None = None) -> tuple[Template, TemplateVersion, Any]:
    """The template row, the version row (default: the latest) and the parsed template."""
    row = await Template.get_or_none(slug=slug)
    if row is None:
        raise NotFound("template")
    v = await TemplateVersion.get_or_none(template_id=row.id, version=version or row.latest_version)
    if v is None:
        raise NotFound("template version")
    return row, v, _parse(v.source, f"{slug}-v{v.version}.toml")


def _rendered(template, parameters: dict[str, Any]):
    from rules_dsl.errors import ParameterError
    from rules_dsl.templates import render

    try:
        return render(template, parameters)
    except ParameterError as exc:
        raise InvalidInput(f"the parameters are wrong: {exc}",
                           details=[{"parameter": p, "message": m} for p, m in exc.problems]) from None


def diff_text(before: str, after: str, before_name: str, after_name: str) -> str:
    lines = list(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                      before_name, after_name))
    if len(lines) > MAX_DIFF_LINES:
        lines = lines[:MAX_DIFF_LINES] + [f"... {len(lines) - MAX_DIFF_LINES} more lines\n"]
    return "".join(lines)


async def running_source(scope: TenantScope, agent_id: Any) -> dict[str, Any]:
    """What an agent of this tenant runs: its deployment and, when it came from a policy
    version (not a rollback), that version's source."""
    agent = await scope.get(Agent, agent_id, "agent")
    out: dict[str, Any] = {"agent_id": agent.id, "digest": None, "source": None, "policy": None, "version": None}
    d = await Deployment.get_or_none(id=agent.deployment_id) if agent.deployment_id else None
    seen = 0
    while d is not None and d.policy_version_id is None and d.rollback_of is not None and seen < 50:
        out["digest"] = out["digest"] or d.plan_digest
        d, seen = await Deployment.get_or_none(id=d.rollback_of, tenant_id=scope.tenant_id), seen + 1
    if d is None:
        return out
    out["digest"] = out["digest"] or d.plan_digest
    if d.policy_version_id is not None:
        v = await PolicyVersion.get(id=d.policy_version_id).prefetch_related("policy")
        out.update(source=v.source, policy=v.policy.name, version=v.version)
    return out


def _explain(source: str) -> str | None:
    import rules_dsl
    from rules_dsl.explain import explain

    checked = rules_dsl.load(source)
    return explain(checked.policy, checked.plan) if checked.ok else None


async def preview(rt: Runtime, scope: TenantScope, slug: str, version: int | None,
                  parameters: dict[str, Any], agent_id: Any = None) -> dict[str, Any]:
    row, v, template = await version_of(slug, version)
    rendered = _rendered(template, parameters)
    compiled = await policies.compile_bounded(slug, rendered.text, rt.config)
    diagnostics, plan_json, digest = compiled.diagnostics, compiled.plan_json, compiled.digest
    out: dict[str, Any] = {
        "slug": slug, "version": v.version, "parameters": rendered.values_text(template),
        "source": rendered.text, "diagnostics": diagnostics, "plan_digest": digest,
        "explain": await asyncio.to_thread(_explain, rendered.text) if plan_json else None,
        "running": None, "diff": None,
    }
    if agent_id is not None:
        running = await running_source(scope, agent_id)
        out["running"] = running
        if running["source"] is not None:
            out["diff"] = diff_text(running["source"], rendered.text,
                                    f"running ({running['policy']} v{running['version']})", f"{slug} v{v.version}")
    return out


async def install(rt: Runtime, scope: TenantScope, slug: str, version: int | None, parameters: dict[str, Any],
                  name: str, tags: list[str], description: str) -> tuple[Policy, LibraryEntry]:
    scope.require("write")
    _, v, template = await version_of(slug, version)
    rendered = _rendered(template, parameters)
    policy, _ = await policies.create(rt, scope, name, rendered.text)
    entry = await LibraryEntry.create(tenant_id=scope.tenant_id, policy=policy, description=description,
                                      tags=tags, template_slug=slug, template_version=v.version,
                                      parameters=rendered.values_text(template))
    await rt.audit.append(actor=scope.actor, action="template.install", tenant_id=scope.tenant_id,
                          target=str(policy.id), address=scope.address,
                          details={"template": slug, "version": v.version})
    return policy, entry


async def upgrade_plan(scope: TenantScope, policy: Policy, version: int | None) -> dict[str, Any]:
    """What upgrading a library entry to a template version would save: the new source
    (its parameters kept) and the diff against the entry's latest version."""
    entry = await LibraryEntry.get_or_none(policy_id=policy.id)
    if entry is None or entry.template_slug is None:
        raise Conflict("this library entry did not come from a template")
    _, v, template = await version_of(entry.template_slug, version)
    kept = {k: val for k, val in entry.parameters.items() if template.param(k) is not None}
    rendered = _rendered(template, kept)
    current = await PolicyVersion.get(policy_id=policy.id, version=policy.latest_version)
    return {"slug": entry.template_slug, "from_version": entry.template_version, "to_version": v.version,
            "parameters": rendered.values_text(template), "source": rendered.text,
            "diff": diff_text(current.source, rendered.text, f"{policy.name} v{current.version}",
                              f"{entry.template_slug} v{v.version}"),
            "entry": entry}


async def upgrade(rt: Runtime, scope: TenantScope, policy: Policy, version: int | None) -> PolicyVersion:
    scope.require("write")
    plan = await upgrade_plan(scope, policy, version)
    if plan["to_version"] == plan["from_version"] and not plan["diff"]:
        raise Conflict(f"already at {plan['slug']} version {plan['to_version']}")
    saved = await policies.save(rt, scope, policy, plan["source"])
    entry = plan["entry"]
    entry.template_version, entry.parameters = plan["to_version"], plan["parameters"]
    await entry.save()
    return saved


def template_json(row: Template, v: TemplateVersion | None = None, template: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {"slug": row.slug, "title": row.title, "summary": row.summary, "tags": row.tags,
                           "latest_version": row.latest_version}
    if template is not None and v is not None:
        out.update(version=v.version, why=template.why, published_by=v.published_by,
                   published_at=v.created_at.isoformat() if v.created_at else None, report=v.report,
                   parameters=[{"name": p.name, "kind": p.kind, "default": p.as_text(p.default),
                                "min": p.bounds[0] if p.numeric else None,
                                "max": p.bounds[1] if p.numeric else None,
                                "description": p.description} for p in template.params])
    return out

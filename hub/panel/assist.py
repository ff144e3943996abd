"""The panel's try-before-deploy pages: the assistant (a request → a checked draft), a
suggestion from an agent's recent attack, and replay of a capture through a candidate.

Nothing here saves or deploys: a draft goes to the editor as a new policy only when the
person asks ("Open in editor"), and deploying it is the policy page's usual form, with
the lockout guard. Refusals (no key, caps, the model's API) are shown on the page.
"""
from __future__ import annotations

import time
import uuid
from typing import Any

from quart import render_template, request

from hub.errors import ClientError, HubError
from hub.models import Agent, Deployment, Policy, PolicyVersion
from hub.panel import bp
from hub.panel.pages import _form, _page
from hub.services import assistant, captures, metrics, policies
from hub.services.scope import TenantScope
from hub.web import rt


SUGGEST_WINDOW_S = 900  # what "this attack" is: the agent's last 15 minutes


async def _policies(scope: TenantScope) -> list[Policy]:
    return await scope.query(Policy).order_by("name")


async def _source_of(scope: TenantScope, policy_id: str) -> str:
    if not policy_id:
        return ""
    try:
        pid = uuid.UUID(policy_id)
    except ValueError:
        return ""
    p = await scope.get(Policy, pid, "policy")
    return (await PolicyVersion.get(policy_id=p.id, version=p.latest_version)).source


async def _running_of(a: Agent) -> str:
    """The source of the version an agent's deployment carries ("" when none)."""
    if a.deployment_id is None:
        return ""
    d = await Deployment.get_or_none(id=a.deployment_id).prefetch_related("policy_version")
    return d.policy_version.source if d is not None and d.policy_version is not None else ""


async def _render(scope: TenantScope, ctx: dict[str, Any], **kw: Any) -> str:
    return await render_template("panel/assistant.html", **ctx, policies=await _policies(scope),
                                 usage=await assistant.usage(rt().config, scope.tenant_id),
                                 can_write="write" in scope.permissions, hhmm=_hhmm, **kw)


def _hhmm(ts: int) -> str:
    return time.strftime("%H:%M", time.gmtime(ts))


@bp.get("/t/<uuid:tenant_id>/assistant")
async def assistant_page(tenant_id: uuid.UUID) -> str:
    scope, ctx = await _page(tenant_id)
    return await _render(scope, ctx, result=None, problem=None, form={})


@bp.post("/t/<uuid:tenant_id>/assistant")
async def assistant_draft(tenant_id: uuid.UUID) -> str:
    scope, ctx = await _page(tenant_id, "write")
    form = await _form()
    result, problem = None, None
    try:
        running = await _source_of(scope, form.get("policy_id", ""))
        result = await assistant.draft(rt().config, scope.tenant_id, form.get("request", ""), running)
    except HubError as exc:  # no key, caps, the model's API: said on the page
        problem = exc.message
    return await _render(scope, ctx, result=result, problem=problem, form=form)


@bp.post("/t/<uuid:tenant_id>/agents/<uuid:agent_id>/suggest")
async def agent_suggest(tenant_id: uuid.UUID, agent_id: uuid.UUID) -> str:
    """"Suggest a rule from this attack": this agent's drops of the last 15 minutes (top
    sources as prefixes unless the person ticks "send single addresses", protocols,
    destination ports and sizes)."""
    scope, ctx = await _page(tenant_id, "write")
    a = await scope.get(Agent, agent_id, "agent")
    form = await _form()
    now = int(time.time())
    rows = await metrics.top_sources(scope.tenant_id, now - SUGGEST_WINDOW_S, now + 1, limit=200, agent_id=a.id)
    aggregates = await metrics.traffic(scope.tenant_id, now - SUGGEST_WINDOW_S, now + 1, agent_id=a.id)
    summary = assistant.summarize(rows, aggregates, raw=form.get("raw") == "1")
    running = await _running_of(a)
    result, problem = None, None
    try:
        result = await assistant.draft(rt().config, scope.tenant_id,
                                       form.get("request") or "suggest a rule against this attack",
                                       running, context=summary)
    except HubError as exc:
        problem = exc.message
    return await _render(scope, ctx, result=result, problem=problem, form=form, agent=a, summary=summary)


# --- replay ------------------------------------------------------------------------------------

@bp.get("/t/<uuid:tenant_id>/replay")
async def replay_page(tenant_id: uuid.UUID) -> str:
    scope, ctx = await _page(tenant_id)
    return await render_template("panel/replay.html", **ctx, policies=await _policies(scope), result=None,
                                 problem=None, form={}, captures=captures.listing(rt(), scope.tenant_id))


@bp.post("/t/<uuid:tenant_id>/replay")
async def replay_run(tenant_id: uuid.UUID) -> str:
    scope, ctx = await _page(tenant_id)
    form = await _form()
    files = await request.files
    result, problem = None, None
    try:
        candidate = form.get("candidate_source", "").strip() or await _source_of(scope, form.get("candidate_id", ""))
        running = await _source_of(scope, form.get("running_id", ""))
        upload = files.get("capture")
        capture = upload.read(rt().config.replay_max_capture_bytes + 1) if upload is not None else b""
        if not capture and form.get("capture_id"):
            capture = captures.read(rt(), scope.tenant_id, form["capture_id"][:64])
        if not candidate:
            problem = "Choose a candidate policy or paste one."
        elif not capture:
            problem = "Choose a capture file (pcap or pcapng) or an agent's capture."
        else:
            result = await policies.replay_bounded(rt().config, candidate, capture, running or None)
    except ClientError as exc:
        problem = exc.message
    return await render_template("panel/replay.html", **ctx, policies=await _policies(scope), result=result,
                                 problem=problem, form=form, captures=captures.listing(rt(), scope.tenant_id))


replay_run.bulwark_bulk_body = True  # type: ignore[attr-defined]  (a capture upload)

"""The policy editor's pages: the source with the checker's findings, `explain`, the
file's expect lines run, the diff against what is deployed, deploy with canaries, the
rollout's progress, and rollback to any digest this policy deployed.

The page is complete without JavaScript (the textarea, a server-side diff and review);
static/editor.js mounts CodeMirror over the textarea and asks `policy_check` as the
person types, which answers with the same review for the unsaved source.
"""
from __future__ import annotations

import difflib
import re
import uuid
from typing import Any

from quart import Response, flash, jsonify, render_template, request

from hub.errors import InvalidInput
from hub.models import Agent, Deployment, DeploymentTarget, Policy, PolicyVersion
from hub.panel import bp
from hub.panel.pages import Named, _back, _page, refused_back
from hub.services import deployments, policies
from hub.services.policies import Compiled
from hub.web import read_json, rt

HISTORY = 20
MAX_DIFF_LINES = 2000
MAX_TARGETS = 10000


def source_diff(deployed: str | None, source: str) -> list[tuple[str, str]]:
    """(kind, line) of a unified diff from the deployed source to `source`; kind is
    add | del | hunk | same. Empty when there is no deployed version or nothing changed."""
    if deployed is None or deployed == source:
        return []
    lines = difflib.unified_diff(deployed.splitlines(), source.splitlines(), "deployed", "this", lineterm="", n=2)
    kinds = {"+": "add", "-": "del", "@": "hunk"}
    out = [(kinds.get(line[:1], "same"), line) for line in list(lines)[2:MAX_DIFF_LINES + 2]]
    return out


def review_json(result: Compiled, deployed: str | None, source: str) -> dict[str, Any]:
    return {"diagnostics": result.diagnostics, "plan_digest": result.digest, "explain": result.explain,
            "expects": list(result.expects),
            "diff": [{"kind": k, "line": line} for k, line in source_diff(deployed, source)]}


async def _history(policy: Policy) -> list[Deployment]:
    """This policy's deployments, and the rollbacks to them, newest first."""
    own = await Deployment.filter(policy_version__policy_id=policy.id).order_by("-created_at").limit(HISTORY)
    backs = await Deployment.filter(rollback_of__in=[d.id for d in own]).order_by("-created_at").limit(HISTORY) \
        if own else []
    return sorted([*own, *backs], key=lambda d: d.created_at, reverse=True)[:HISTORY]


async def _progress(d: Deployment | None) -> dict[str, Any] | None:
    if d is None:
        return None
    targets = await DeploymentTarget.filter(deployment_id=d.id).prefetch_related("agent").order_by("id")
    targets.sort(key=lambda t: (not t.canary, (t.agent.hostname or "").lower(), str(t.agent_id)))  # canaries first
    counts: dict[str, int] = {}
    for t in targets:
        counts[t.status] = counts.get(t.status, 0) + 1
    return {"deployment": d, "targets": targets, "counts": counts,
            "applied": counts.get("applied", 0), "total": len(targets)}


@bp.get("/t/<uuid:tenant_id>/policies/<uuid:policy_id>")
async def policy(tenant_id: uuid.UUID, policy_id: uuid.UUID) -> str:
    scope, ctx = await _page(tenant_id)
    p = await scope.get(Policy, policy_id, "policy")
    latest = await PolicyVersion.get(policy_id=p.id, version=p.latest_version)
    targets = await scope.query(Agent).filter(revoked_at__isnull=True).order_by("enrolled_at")
    history = await _history(p)
    deployed_version = await PolicyVersion.get_or_none(id=history[0].policy_version_id) \
        if history and history[0].policy_version_id else None
    if history and deployed_version is None:  # the newest is a rollback: what it rolled back to
        deployed_version = await deployments._source_of(history[0])
    review = await policies.compile_bounded(p.name, latest.source, rt().config, review=True)
    deployed_source = deployed_version.source if deployed_version else None
    return await render_template(
        "panel/policy.html", **ctx, policy=p, latest=latest, agents=targets,
        can_write="write" in scope.permissions, can_deploy="deploy" in scope.permissions,
        review=review, diff=source_diff(deployed_source, latest.source), deployed=deployed_version,
        history=history, progress=await _progress(history[0] if history else None),
        keywords=" ".join(policies.keywords()))


@bp.post("/t/<uuid:tenant_id>/policies/<uuid:policy_id>/check")
async def policy_check(tenant_id: uuid.UUID, policy_id: uuid.UUID) -> Response:
    """The checker on unsaved source (editor.js, as the person types): the review a save
    runs (lockout guard and hub-list warnings included), the expect lines, `explain`, and
    the diff against the deployed version; nothing is stored."""
    scope, _ = await _page(tenant_id, "write")
    p = await scope.get(Policy, policy_id, "policy")
    body = await read_json()
    source = body.get("source") if isinstance(body, dict) else None
    deployed = body.get("deployed_version") if isinstance(body, dict) else None
    if not isinstance(source, str) or not (deployed is None or type(deployed) is int):
        raise InvalidInput("send {\"source\": \"...\", \"deployed_version\": N or null}")
    result = await policies.checked_in(rt(), scope, p.name, source, review=True)
    before = await PolicyVersion.get_or_none(policy_id=p.id, version=deployed) \
        if deployed is not None and 0 < deployed < 2**31 else None
    return jsonify(review_json(result, before.source if before else None, source))


@bp.get("/t/<uuid:tenant_id>/deployments/<uuid:deployment_id>/progress")
async def deployment_progress(tenant_id: uuid.UUID, deployment_id: uuid.UUID) -> Response:
    """The rollout's state and its targets' statuses (the policy page polls it)."""
    scope, _ = await _page(tenant_id)
    found = await _progress(await scope.get(Deployment, deployment_id, "deployment"))
    return jsonify({"state": found["deployment"].state, "applied": found["applied"], "total": found["total"],
                    "targets": [{"agent": t.agent.hostname or str(t.agent_id)[:8], "canary": t.canary,
                                 "status": t.status} for t in found["targets"]]})


def _ids(values: list[str], what: str) -> list[uuid.UUID]:
    try:
        return [uuid.UUID(x) for x in values[:MAX_TARGETS]]
    except ValueError:
        raise InvalidInput(f"{what} id is malformed") from None


@bp.post("/t/<uuid:tenant_id>/policies/<uuid:policy_id>/deploy")
async def policy_deploy(tenant_id: uuid.UUID, policy_id: uuid.UUID) -> Response:
    scope, _ = await _page(tenant_id, "deploy")
    p = await scope.get(Policy, policy_id, "policy")
    form = await request.form
    version = await PolicyVersion.get(policy_id=p.id, version=p.latest_version)
    async with refused_back("panel.policy", tenant_id=tenant_id, policy_id=policy_id) as refused:
        agent_ids = _ids(form.getlist("agent"), "an agent")
        canary_ids = _ids(form.getlist("canary"), "a canary")
        d = await deployments.deploy_version(rt(), scope, version, agent_ids=agent_ids, labels=[],
                                             canary_ids=canary_ids, monitor=form.get("monitor") == "1")
        first = f", {len(d.canary_agents)} canary first" if d.canary_agents else ""
        await flash(f"Deployed {p.name} version {version.version} ({d.plan_digest[:12]}) "
                    f"to {len(agent_ids)} agent(s){first}.")
    return refused.response or _back("panel.policy", tenant_id=tenant_id, policy_id=policy_id)


def _policy_name(name: str) -> str | None:
    from hub.api_schemas.policies import NAME

    return None if re.match(NAME, name) else "a policy name is letters, digits, dots, dashes and underscores"


POLICY = Named(Policy, "policy", "panel.policy", "policy_id", "panel.policies_index", policies.rename, policies.delete,
               label=lambda p: p.name, refuse_name=_policy_name,
               deleted="Deleted the {kind} {label}; its deployments keep their Plans.",
               ).routes("/t/<uuid:tenant_id>/policies/<uuid:policy_id>")

"""The panel's tenant pages: dashboard, agents, policies, deployments, lists, audit.

Each handler resolves its `TenantScope` through hub.web like the API does, reads and
writes through hub/services, and answers a form POST with a redirect (flash message in
the panel cookie), so reloading a page never repeats an action.
"""
from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from typing import Any

from quart import Response, flash, jsonify, redirect, render_template, request, session, url_for

from hub.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from hub.models import Agent, AuditEntry, Deployment, IpEntry, IpList, Policy, PolicyVersion, Tenant
from hub.panel import bp, summary
from hub.services import accounts, agents, deployments, lists, metrics, policies, tenants
from hub.services.scope import Principal, TenantScope, resolve_scope
from hub.web import current_session, principal, read_json, rt

PAGE_SIZE = 50
DASHBOARD_WINDOW_S = 15 * 60
TOP_SOURCES = 10
DASHBOARD_BUCKET_S = 60  # the trend starts as 15 points (one query for all agents); live rates extend it
MAX_PAGE = 1_000_000
MAX_SEARCH = 64
LAST_TENANT = "tenant"


async def _user_principal() -> Principal:
    p = await principal()
    if p.user_id is None:
        raise Unauthenticated("the panel is for signed-in users")
    return p


async def _chrome(p: Principal, tenant_id: uuid.UUID | None = None) -> dict[str, Any]:
    """What every page's frame shows: the user, their tenants, the current one, the CSRF token."""
    found = await current_session()
    mine = sorted(await tenants.tenants_of(p), key=lambda tr: tr[0].name.lower())
    current = next((t for t, _ in mine if t.id == tenant_id), None)
    if current is None and tenant_id is not None:
        current = await Tenant.get_or_none(id=tenant_id)  # a platform admin outside the tenant
    return {"user": await accounts.get_user(p.user_id), "tenants": mine, "tenant": current,
            "csrf_token": found[1].csrf_token if found else ""}


async def _page(tenant_id: uuid.UUID, need: str = "read") -> tuple[TenantScope, dict[str, Any]]:
    p = await _user_principal()
    scope = await resolve_scope(p, tenant_id, need)
    session[LAST_TENANT] = str(tenant_id)  # where "/" goes next time
    return scope, await _chrome(p, tenant_id)


def _int_arg(name: str, default: int, high: int = MAX_PAGE) -> int:
    raw = request.args.get(name, "")
    if not raw:
        return default
    if not raw.isdigit() or len(raw) > 9 or not 1 <= int(raw) <= high:
        raise InvalidInput(f"{name} must be a whole number from 1 to {high}")
    return int(raw)


async def _form() -> dict[str, str]:
    return {k: v for k, v in (await request.form).items()}


def _back(endpoint: str, **values: Any) -> Response:
    return redirect(url_for(endpoint, **values))


class refused_back:  # noqa: N801 (used as a context manager, named for what it does)
    """Around a form's action: a refusal the person can fix (bad address, duplicate name,
    nothing to deploy to) goes back to the form's page with the reason shown, instead of
    an error page. Access refusals (401/403/404) still propagate."""

    FIXABLE = (InvalidInput, Conflict)

    def __init__(self, endpoint: str, **values: Any) -> None:
        self.endpoint, self.values, self.response = endpoint, values, None

    async def __aenter__(self) -> refused_back:
        return self

    async def __aexit__(self, kind, exc, tb) -> bool:
        if exc is None or not isinstance(exc, self.FIXABLE):
            return False
        await flash(exc.message, "error")
        self.response = _back(self.endpoint, **self.values)
        return True


# --- home and tenants -------------------------------------------------------------------

@bp.get("/")
async def home() -> Response | str:
    p = await _user_principal()
    mine = sorted(await tenants.tenants_of(p), key=lambda tr: tr[0].name.lower())
    if mine:
        last = session.get(LAST_TENANT)
        chosen = next((t for t, _ in mine if str(t.id) == last), mine[0][0])
        return _back("panel.dashboard", tenant_id=chosen.id)
    return await render_template("panel/home.html", **await _chrome(p))


@bp.post("/tenants")
async def create_tenant() -> Response:
    p = await _user_principal()
    tenant = await tenants.create_tenant(rt(), p, (await _form()).get("name", "")[:200])
    return _back("panel.dashboard", tenant_id=tenant.id)


# --- dashboard and agents ---------------------------------------------------------------

async def _desired(agent_rows: list[Agent]) -> dict[uuid.UUID, Deployment]:
    ids = {a.deployment_id for a in agent_rows if a.deployment_id}
    return {d.id: d for d in await Deployment.filter(id__in=list(ids))} if ids else {}


def _agent_view(a: Agent, desired: Deployment | None, mine: list[dict[str, Any]], now: dt.datetime) -> dict:
    """What one agent's row or page shows; `mine` are its own metric points."""
    verdict_map = summary.verdicts(desired.plan_json if desired else None)
    window = rt().config.agent_connected_window_s
    status = a.last_status or {}
    return {
        "agent": a, "online": summary.online(a.last_seen_at, window, now) and a.revoked_at is None,
        "xdp_mode": status.get("xdp_mode") or (a.inventory or {}).get("xdp_mode", "none"), "mode": status.get("mode", "none"),
        "healthy": status.get("healthy", True), "errors": status.get("errors", []),
        "drift": status.get("drift", []),
        "desired_digest": desired.plan_digest if desired else None,
        "sync": summary.drift_state(desired.plan_digest if desired else None, a.applied_digest),
        "verdicts": verdict_map, "totals": summary.totals(mine, verdict_map),
        "series": summary.series(mine, verdict_map),
    }


@bp.get("/t/<uuid:tenant_id>/")
async def dashboard(tenant_id: uuid.UUID) -> str:
    scope, ctx = await _page(tenant_id)
    rows = await scope.query(Agent).order_by("enrolled_at")
    desired = await _desired(rows)
    end = int(time.time()) + 1
    points = await metrics.bucketed(scope.tenant_id, end - DASHBOARD_WINDOW_S, end, DASHBOARD_BUCKET_S)
    now = dt.datetime.now(dt.timezone.utc)
    by_agent: dict[str, list[dict[str, Any]]] = {}
    for point in points:  # one pass, not one scan of every point per agent
        by_agent.setdefault(point["agent_id"], []).append(point)
    views = [_agent_view(a, desired.get(a.deployment_id), by_agent.get(str(a.id), []), now) for a in rows]
    top = await metrics.top_sources(scope.tenant_id, end - DASHBOARD_WINDOW_S, end, limit=TOP_SOURCES)
    return await render_template("panel/dashboard.html", **ctx, views=views, human=summary.human, top=top,
                                 online=sum(v["online"] for v in views), json=json,
                                 window_min=DASHBOARD_WINDOW_S // 60)


@bp.get("/t/<uuid:tenant_id>/agents/<uuid:agent_id>")
async def agent(tenant_id: uuid.UUID, agent_id: uuid.UUID) -> str:
    scope, ctx = await _page(tenant_id)
    a = await scope.get(Agent, agent_id, "agent")
    desired = (await _desired([a])).get(a.deployment_id)
    end = int(time.time()) + 1
    points = await metrics.query(scope.tenant_id, agent_id=a.id, rule=None, start=end - DASHBOARD_WINDOW_S,
                                 end=end, resolution="raw", rollup_s=rt().config.metrics_rollup_s)
    view = _agent_view(a, desired, points, dt.datetime.now(dt.timezone.utc))
    return await render_template("panel/agent.html", **ctx, v=view, human=summary.human, json=json,
                                 can_deploy="deploy" in scope.permissions, window_min=DASHBOARD_WINDOW_S // 60)


@bp.post("/t/<uuid:tenant_id>/agents/<uuid:agent_id>/protection")
async def protection(tenant_id: uuid.UUID, agent_id: uuid.UUID) -> Response:
    scope, _ = await _page(tenant_id, "deploy")
    a = await scope.get(Agent, agent_id, "agent")
    enabled = (await _form()).get("enabled") == "1"
    await agents.set_enabled(rt(), scope, [a], enabled)
    await flash(f"Protection {'enabled' if enabled else 'disabled'} on {a.hostname or a.id}.")
    return _back("panel.agent", tenant_id=tenant_id, agent_id=agent_id)


# --- policies and deployments -----------------------------------------------------------

@bp.get("/t/<uuid:tenant_id>/policies")
async def policies_index(tenant_id: uuid.UUID) -> str:
    scope, ctx = await _page(tenant_id)
    rows = await scope.query(Policy).order_by("name")
    wanted = {(p.id, p.latest_version) for p in rows}
    found = await PolicyVersion.filter(policy_id__in=[p.id for p in rows]) if rows else []
    latest = {v.policy_id: v for v in found if (v.policy_id, v.version) in wanted}
    return await render_template("panel/policies.html", **ctx, policies=rows, latest=latest,
                                 can_write="write" in scope.permissions)


@bp.post("/t/<uuid:tenant_id>/policies")
async def policy_create(tenant_id: uuid.UUID) -> Response:
    scope, _ = await _page(tenant_id, "write")
    form = await _form()
    async with refused_back("panel.policies_index", tenant_id=tenant_id) as refused:
        policy, _ = await policies.create(rt(), scope, form.get("name", "")[:200].strip(), form.get("source", ""))
    return refused.response or _back("panel.policy", tenant_id=tenant_id, policy_id=policy.id)


@bp.get("/t/<uuid:tenant_id>/policies/<uuid:policy_id>")
async def policy(tenant_id: uuid.UUID, policy_id: uuid.UUID) -> str:
    scope, ctx = await _page(tenant_id)
    p = await scope.get(Policy, policy_id, "policy")
    latest = await PolicyVersion.get(policy_id=p.id, version=p.latest_version)
    targets = await scope.query(Agent).filter(revoked_at__isnull=True).order_by("enrolled_at")
    return await render_template("panel/policy.html", **ctx, policy=p, latest=latest, agents=targets,
                                 can_write="write" in scope.permissions,
                                 can_deploy="deploy" in scope.permissions)


@bp.post("/t/<uuid:tenant_id>/policies/<uuid:policy_id>")
async def policy_save(tenant_id: uuid.UUID, policy_id: uuid.UUID) -> Response:
    scope, _ = await _page(tenant_id, "write")
    p = await scope.get(Policy, policy_id, "policy")
    version = await policies.save(rt(), scope, p, (await _form()).get("source", ""))
    if version.error_count:
        await flash(f"Saved version {version.version} with {version.error_count} error(s): it cannot be deployed.")
    else:
        await flash(f"Saved version {version.version}: no errors.")
    return _back("panel.policy", tenant_id=tenant_id, policy_id=policy_id)


@bp.post("/t/<uuid:tenant_id>/policies/<uuid:policy_id>/check")
async def policy_check(tenant_id: uuid.UUID, policy_id: uuid.UUID) -> Response:
    """The checker on unsaved source (editor.js, as the person types): the same
    `compile_source` a save runs, lockout guard included; nothing is stored."""
    scope, _ = await _page(tenant_id, "write")
    p = await scope.get(Policy, policy_id, "policy")
    body = await read_json()
    source = body.get("source") if isinstance(body, dict) else None
    if not isinstance(source, str):
        raise InvalidInput("send {\"source\": \"...\"}")
    diagnostics, _, digest = policies.compile_source(p.name, source, rt().config)
    return jsonify({"diagnostics": diagnostics, "plan_digest": digest})


@bp.post("/t/<uuid:tenant_id>/policies/<uuid:policy_id>/deploy")
async def policy_deploy(tenant_id: uuid.UUID, policy_id: uuid.UUID) -> Response:
    scope, _ = await _page(tenant_id, "deploy")
    p = await scope.get(Policy, policy_id, "policy")
    form = await request.form
    version = await PolicyVersion.get(policy_id=p.id, version=p.latest_version)
    async with refused_back("panel.policy", tenant_id=tenant_id, policy_id=policy_id) as refused:
        try:
            agent_ids = [uuid.UUID(x) for x in form.getlist("agent")[:10000]]
        except ValueError:
            raise InvalidInput("an agent id is malformed") from None
        d = await deployments.deploy_version(rt(), scope, version, agent_ids=agent_ids, labels=[],
                                             canary_ids=[], monitor=form.get("monitor") == "1")
        await flash(f"Deployed {p.name} version {version.version} ({d.plan_digest[:12]}) "
                    f"to {len(agent_ids)} agent(s).")
    return refused.response or _back("panel.deployments_index", tenant_id=tenant_id)


@bp.get("/t/<uuid:tenant_id>/deployments")
async def deployments_index(tenant_id: uuid.UUID) -> str:
    scope, ctx = await _page(tenant_id)
    rows = await scope.query(Deployment).order_by("-created_at").limit(200)
    versions = {v.id: v for v in await PolicyVersion.filter(
        id__in=[d.policy_version_id for d in rows if d.policy_version_id]).prefetch_related("policy")}
    return await render_template("panel/deployments.html", **ctx, deployments=rows, versions=versions,
                                 can_deploy="deploy" in scope.permissions)


@bp.post("/t/<uuid:tenant_id>/deployments/<uuid:deployment_id>/rollback")
async def rollback(tenant_id: uuid.UUID, deployment_id: uuid.UUID) -> Response:
    scope, _ = await _page(tenant_id, "deploy")
    earlier = await scope.get(Deployment, deployment_id, "deployment")
    async with refused_back("panel.deployments_index", tenant_id=tenant_id):
        d = await deployments.rollback_to(rt(), scope, earlier)
        await flash(f"Rolled back to {earlier.plan_digest[:12]} (deployment {str(d.id)[:8]}).")
    return _back("panel.deployments_index", tenant_id=tenant_id)


# --- lists ------------------------------------------------------------------------------

@bp.get("/t/<uuid:tenant_id>/lists")
async def lists_index(tenant_id: uuid.UUID) -> str:
    scope, ctx = await _page(tenant_id)
    rows = await scope.query(IpList).order_by("name")
    return await render_template("panel/lists.html", **ctx, lists=rows, can_write="write" in scope.permissions)


@bp.post("/t/<uuid:tenant_id>/lists")
async def list_create(tenant_id: uuid.UUID) -> Response:
    scope, _ = await _page(tenant_id, "write")
    form = await _form()
    async with refused_back("panel.lists_index", tenant_id=tenant_id) as refused:
        ip_list = await lists.create_list(rt(), scope, form.get("name", "")[:200].strip(), form.get("kind", ""))
    return refused.response or _back("panel.list_page", tenant_id=tenant_id, list_id=ip_list.id)


@bp.get("/t/<uuid:tenant_id>/lists/<uuid:list_id>")
async def list_page(tenant_id: uuid.UUID, list_id: uuid.UUID) -> str:
    scope, ctx = await _page(tenant_id)
    ip_list = await scope.get(IpList, list_id, "list")
    search = request.args.get("q", "").strip()[:MAX_SEARCH]
    page = _int_arg("page", 1)
    qs = IpEntry.filter(ip_list_id=ip_list.id, removed_rev__isnull=True)
    if search:
        qs = qs.filter(network__startswith=search)
    total = await qs.count()
    pages = max(1, -(-total // PAGE_SIZE))
    rows = await qs.order_by("id").offset((min(page, pages) - 1) * PAGE_SIZE).limit(PAGE_SIZE) \
        .values("network", "expires_at", "comment")
    return await render_template("panel/list.html", **ctx, ip_list=ip_list, entries=rows, total=total,
                                 page=min(page, pages), pages=pages, q=search,
                                 can_write="write" in scope.permissions)


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
        await lists.change(rt(), scope, ip_list, [lists.Entry(network, None, form.get("comment", "")[:200])], [])
        await flash(f"Added {network}.")
    return refused.response or _back("panel.list_page", tenant_id=tenant_id, list_id=list_id)


@bp.post("/t/<uuid:tenant_id>/lists/<uuid:list_id>/entries/remove")
async def list_remove(tenant_id: uuid.UUID, list_id: uuid.UUID) -> Response:
    scope, _ = await _page(tenant_id, "write")
    ip_list = await scope.get(IpList, list_id, "list")
    network = (await _form()).get("network", "")[:64]
    if not network:
        raise NotFound("entry")
    await lists.change(rt(), scope, ip_list, [], [network])
    await flash(f"Removed {network}.")
    return _back("panel.list_page", tenant_id=tenant_id, list_id=list_id, q=request.args.get("q", "")[:64])


# --- audit ------------------------------------------------------------------------------

@bp.get("/t/<uuid:tenant_id>/audit")
async def audit(tenant_id: uuid.UUID) -> str:
    scope, ctx = await _page(tenant_id)
    before = _int_arg("before", 0, 2**31 - 1)
    qs = scope.query(AuditEntry)
    if before:
        qs = qs.filter(seq__lt=before)
    rows = await qs.order_by("-seq").limit(PAGE_SIZE)
    return await render_template("panel/audit.html", **ctx, entries=rows,
                                 older=rows[-1].seq if len(rows) == PAGE_SIZE else None)


# --- alerts -----------------------------------------------------------------------------

@bp.get("/t/<uuid:tenant_id>/alerts")
async def alerts_index(tenant_id: uuid.UUID) -> str:
    """The alert history (incidents, newest first) and the messages given up on."""
    from hub.models import Incident, OutboxMessage

    scope, ctx = await _page(tenant_id)
    incidents = await scope.query(Incident).order_by("-opened_at").limit(PAGE_SIZE)
    dead = await scope.query(OutboxMessage).filter(state="dead").order_by("-created_at").limit(PAGE_SIZE)
    return await render_template("panel/alerts.html", **ctx, incidents=incidents, dead=dead)


@bp.post("/t/<uuid:tenant_id>/alerts/outbox/<uuid:message_id>/replay")
async def alerts_replay(tenant_id: uuid.UUID, message_id: uuid.UUID) -> Response:
    from hub.models import OutboxMessage
    from hub.services import outbox

    scope, _ = await _page(tenant_id, "admin")
    message = await scope.get(OutboxMessage, message_id, "message")
    await outbox.replay(message)
    await rt().audit.append(actor=scope.actor, action="alert.replay", tenant_id=scope.tenant_id, target=str(message.id))
    await flash(f"The message to {message.target} will be sent again.")
    return _back("panel.alerts_index", tenant_id=tenant_id)

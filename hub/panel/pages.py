"""The panel's tenant pages: agents' actions, policies, deployments, lists, audit
(the dashboard and an agent's page: hub.panel.dashboard).

Each handler resolves its `TenantScope` through hub.web like the API does, reads and
writes through hub/services, and answers a form POST with a redirect (flash message in
the panel cookie), so reloading a page never repeats an action.
"""
from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from quart import Response, flash, redirect, render_template, request, session, url_for

from hub.clock import now_utc
from hub.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from hub.models import Agent, Deployment, IpList, Policy, PolicyVersion, Tenant
from hub.panel import bp, safe_next, summary
from hub.services import accounts, agents, deployments, lists, policies, tenants
from hub.services.scope import Principal, TenantScope, resolve_scope
from hub.web import current_session, principal, rt

PAGE_SIZE = 50
MAX_PAGE = 1_000_000
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
            "csrf_token": found[1].csrf_token if found else "", "billing_banner": await _billing_banner(current)}


async def _billing_banner(tenant: Tenant | None) -> summary.Banner | None:
    """Trial end, past_due, restricted, suspended: on every page of the tenant."""
    from hub.services import billing

    if tenant is None or not billing.enabled(rt()):
        return None
    return summary.billing_banner(await billing.summary(tenant.id), billing.PRICE, now_utc())


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


@dataclass(frozen=True)
class Named:
    """One kind of named object's rename and delete forms (agents, lists, policies): the
    same steps for each, told apart only by these."""

    model: type
    kind: str                                   # "agent": scope.get's word, and the messages'
    page: str                                   # the object's page (both forms sit there)
    id_arg: str                                 # its URL parameter
    index: str                                  # where a deletion goes back to
    rename: Callable[..., Awaitable[Any]]       # service(rt, scope, obj, name)
    delete: Callable[..., Awaitable[Any]]       # service(rt, scope, obj)
    label: Callable[[Any], str]                 # what a message calls the object
    refuse_name: Callable[[str], str | None]    # why a new name cannot be, or None
    renamed: str = "Renamed to {name}."
    deleted: str = "Deleted the {kind} {label}."
    delete_needs: str = "write"

    def routes(self, rule: str) -> Named:
        """POST `rule`/rename and `rule`/delete, as the endpoints panel.<kind>_rename and
        panel.<kind>_delete (the forms' url_for names)."""
        async def rename(tenant_id: uuid.UUID, **ids: uuid.UUID) -> Response:
            return await rename_form(self, tenant_id, ids[self.id_arg])

        async def delete(tenant_id: uuid.UUID, **ids: uuid.UUID) -> Response:
            return await delete_form(self, tenant_id, ids[self.id_arg])

        bp.add_url_rule(f"{rule}/rename", f"{self.kind}_rename", rename, methods=["POST"])
        bp.add_url_rule(f"{rule}/delete", f"{self.kind}_delete", delete, methods=["POST"])
        return self


def _nonempty(kind: str) -> Callable[[str], str | None]:
    return lambda name: None if name else f"{kind} needs a name"


async def rename_form(named: Named, tenant_id: uuid.UUID, obj_id: uuid.UUID) -> Response:
    scope, _ = await _page(tenant_id, "write")
    obj = await scope.get(named.model, obj_id, named.kind)
    name = (await _form()).get("name", "")[:200].strip()
    here = {"tenant_id": tenant_id, named.id_arg: obj_id}
    async with refused_back(named.page, **here) as refused:
        reason = named.refuse_name(name)
        if reason:
            raise InvalidInput(reason)
        await named.rename(rt(), scope, obj, name)
        await flash(named.renamed.format(name=name))
    return refused.response or _back(named.page, **here)


async def delete_form(named: Named, tenant_id: uuid.UUID, obj_id: uuid.UUID) -> Response:
    scope, _ = await _page(tenant_id, named.delete_needs)
    obj = await scope.get(named.model, obj_id, named.kind)
    async with refused_back(named.page, tenant_id=tenant_id, **{named.id_arg: obj_id}) as refused:
        await named.delete(rt(), scope, obj)
        await flash(named.deleted.format(kind=named.kind, label=named.label(obj)))
    return refused.response or _back(named.index, tenant_id=tenant_id)


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


# --- agents (their pages: hub.panel.dashboard) ------------------------------------------

@bp.post("/t/<uuid:tenant_id>/agents/<uuid:agent_id>/protection")
async def protection(tenant_id: uuid.UUID, agent_id: uuid.UUID) -> Response:
    scope, _ = await _page(tenant_id, "deploy")
    a = await scope.get(Agent, agent_id, "agent")
    enabled = (await _form()).get("enabled") == "1"
    await agents.set_enabled(rt(), scope, [a], enabled)
    await flash(f"Protection {'enabled' if enabled else 'disabled'} on {a.hostname or a.id}.")
    return _back("panel.agent", tenant_id=tenant_id, agent_id=agent_id)


AGENT = Named(Agent, "agent", "panel.agent", "agent_id", "panel.dashboard", agents.rename, agents.delete,
              label=lambda a: a.hostname or str(a.id), refuse_name=_nonempty("an agent"), delete_needs="admin",
              ).routes("/t/<uuid:tenant_id>/agents/<uuid:agent_id>")


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


@bp.post("/t/<uuid:tenant_id>/policies/<uuid:policy_id>")
async def policy_save(tenant_id: uuid.UUID, policy_id: uuid.UUID) -> Response:
    scope, _ = await _page(tenant_id, "write")
    p = await scope.get(Policy, policy_id, "policy")
    version = await policies.save(rt(), scope, p, (await _form()).get("source", ""))
    if version.error_count:
        await flash(f"Saved version {version.version} with {version.error_count} error(s): it cannot be deployed.")
    elif version.warning_count:
        await flash(f"Saved version {version.version}: no errors, {version.warning_count} warning(s).")
    else:
        await flash(f"Saved version {version.version}: no errors.")
    return _back("panel.policy", tenant_id=tenant_id, policy_id=policy_id)


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
    back = safe_next((await _form()).get("next") or url_for("panel.deployments_index", tenant_id=tenant_id))
    try:
        d = await deployments.rollback_to(rt(), scope, earlier)
        await flash(f"Rolled back to {earlier.plan_digest[:12]} (deployment {str(d.id)[:8]}).")
    except refused_back.FIXABLE as exc:
        await flash(exc.message, "error")
    return redirect(back)


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
    """The tenant's entries with filters (action, actor, time), and whether its chain
    verifies: every hash and link since the verified mark (the scheduled full verify
    covers what is before it), and the last signed checkpoint still reached."""
    from hub.services import audit_search

    scope, ctx = await _page(tenant_id)
    args = request.args
    filters = audit_search.Filters(
        action=args.get("action", "").strip()[:64] or None, actor=args.get("actor", "").strip()[:200] or None,
        since=_time_arg("since"), until=_time_arg("until"), before_seq=_int_arg("before", 0, 2**31 - 1) or None)
    rows = await audit_search.select(scope, filters).limit(PAGE_SIZE)
    walk, mark = await rt().audit.verify_since_mark(tenant_id=scope.tenant_id)
    kept = {k: v for k, v in args.items() if k in ("action", "actor", "since", "until") and v}
    return await render_template("panel/audit.html", **ctx, entries=rows, filters=filters, kept=kept,
                                 actions=await audit_search.actions(scope), args=args,
                                 verified={"checked": walk.checked, "problems": walk.problems[:20], "ok": not walk.problems,
                                           "mark": mark, "checkpoint": rt().audit.last_checkpoint()},
                                 older=rows[-1].seq if len(rows) == PAGE_SIZE else None)


def _time_arg(name: str) -> dt.datetime | None:
    """A `datetime-local` field's value (UTC), or an ISO 8601 time."""
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        if len(raw) > 40:
            raise ValueError
        return dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{name} must be a time like 2026-12-01T09:30") from None


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

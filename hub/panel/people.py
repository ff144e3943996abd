"""The tenant's own pages: members and invitations, API tokens and settings, enrolment.

Secrets (an invitation link, an API token, a join token) are rendered once, into the
answer to the POST that made them (no-store, like every dynamic answer); the lists show
only what can be shown again. Same services, same permissions as the API.
"""
from __future__ import annotations

import uuid

from quart import Response, flash, redirect, render_template, request, url_for

from hub.errors import InvalidInput
from hub.models import ApiToken, Invitation, JoinToken, Membership, Tenant
from hub.models.access import ROLES, TOKEN_SCOPES
from hub.panel import bp
from hub.panel.pages import _back, _form, _page, refused_back
from hub.services import agents, enrolment, tenants
from hub.web import rt

TTL_CHOICES_MIN = (10, 30, 60)
TOKEN_TTL_DAYS = (("", "never"), ("7", "7 days"), ("30", "30 days"), ("90", "90 days"), ("365", "1 year"))


# --- members and invitations -------------------------------------------------------------

async def _members_page(tenant_id: uuid.UUID, status: int = 200, **extra):
    scope, ctx = await _page(tenant_id)
    rows = await scope.query(Membership).prefetch_related("user")
    rows.sort(key=lambda m: (ROLES.index(m.role) * -1, m.user.email))
    admin = "admin" in scope.permissions
    invitations = await scope.query(Invitation).order_by("-created_at").limit(100) if admin else []
    return await render_template(
        "panel/members.html", **ctx, members=rows, invitations=invitations, can_admin=admin,
        is_owner="billing" in scope.permissions, roles=ROLES, me_id=scope.principal.user_id,
        state=tenants.invitation_state, **extra), status


@bp.get("/t/<uuid:tenant_id>/members")
async def members(tenant_id: uuid.UUID):
    return await _members_page(tenant_id)


@bp.post("/t/<uuid:tenant_id>/members/<int:member_id>/role")
async def member_role(tenant_id: uuid.UUID, member_id: int) -> Response:
    scope, _ = await _page(tenant_id, "admin")
    membership = await scope.get(Membership, member_id, "member")
    async with refused_back("panel.members", tenant_id=tenant_id) as refused:
        role = (await _form()).get("role", "")
        await tenants.set_role(rt(), scope, membership, role)
        await flash(f"Role changed to {role}.")
    return refused.response or _back("panel.members", tenant_id=tenant_id)


@bp.post("/t/<uuid:tenant_id>/members/<int:member_id>/remove")
async def member_remove(tenant_id: uuid.UUID, member_id: int) -> Response:
    scope, _ = await _page(tenant_id, "admin")
    membership = await scope.get(Membership, member_id, "member")
    async with refused_back("panel.members", tenant_id=tenant_id) as refused:
        await tenants.remove_member(rt(), scope, membership)
        await flash("Member removed.")
    return refused.response or _back("panel.members", tenant_id=tenant_id)


@bp.post("/t/<uuid:tenant_id>/invitations")
async def invitation_create(tenant_id: uuid.UUID):
    scope, _ = await _page(tenant_id, "admin")
    form = await _form()
    email, role = form.get("email", "")[:320].strip(), form.get("role", "")
    async with refused_back("panel.members", tenant_id=tenant_id) as refused:
        token = await tenants.invite(rt(), scope, email, role)
    if refused.response:
        return refused.response
    link = rt().config.public_url.rstrip("/") + url_for("panel.invitation", token=token)
    return await _members_page(tenant_id, new_invitation={"email": email, "role": role, "link": link})


@bp.post("/t/<uuid:tenant_id>/invitations/<uuid:invitation_id>/revoke")
async def invitation_revoke(tenant_id: uuid.UUID, invitation_id: uuid.UUID) -> Response:
    scope, _ = await _page(tenant_id, "admin")
    invitation = await scope.get(Invitation, invitation_id, "invitation")
    async with refused_back("panel.members", tenant_id=tenant_id) as refused:
        await tenants.revoke_invitation(rt(), scope, invitation)
        await flash(f"The invitation to {invitation.email} no longer works.")
    return refused.response or _back("panel.members", tenant_id=tenant_id)


# --- settings and API tokens -------------------------------------------------------------

async def _settings_page(tenant_id: uuid.UUID, **extra):
    scope, ctx = await _page(tenant_id)
    admin = "admin" in scope.permissions
    tokens = await scope.query(ApiToken).order_by("-created_at").limit(200) if admin else []
    return await render_template("panel/settings.html", **ctx, tokens=tokens, can_admin=admin,
                                 is_owner="billing" in scope.permissions, scopes=TOKEN_SCOPES,
                                 granted=scope.permissions, ttl_days=TOKEN_TTL_DAYS, **extra)


@bp.get("/t/<uuid:tenant_id>/settings")
async def tenant_settings(tenant_id: uuid.UUID):
    return await _settings_page(tenant_id)


@bp.post("/t/<uuid:tenant_id>/settings/name")
async def tenant_rename(tenant_id: uuid.UUID) -> Response:
    scope, _ = await _page(tenant_id, "admin")
    async with refused_back("panel.tenant_settings", tenant_id=tenant_id) as refused:
        tenant = await tenants.rename_tenant(rt(), scope, (await _form()).get("name", "")[:400])
        await flash(f"Renamed to {tenant.name}.")
    return refused.response or _back("panel.tenant_settings", tenant_id=tenant_id)


@bp.post("/t/<uuid:tenant_id>/settings/delete")
async def tenant_delete(tenant_id: uuid.UUID) -> Response:
    scope, _ = await _page(tenant_id, "admin")
    tenant = await Tenant.get(id=scope.tenant_id)
    async with refused_back("panel.tenant_settings", tenant_id=tenant_id) as refused:
        if (await _form()).get("confirm", "").strip() != tenant.name:
            raise InvalidInput("type the tenant's name exactly to delete it")
        await tenants.delete_tenant(rt(), scope)
        await flash(f"Tenant {tenant.name} deleted.")
    return refused.response or redirect(url_for("panel.home"))


@bp.post("/t/<uuid:tenant_id>/tokens")
async def token_create(tenant_id: uuid.UUID):
    scope, _ = await _page(tenant_id, "admin")
    form = await _form()

    chosen = (await request.form).getlist("scope")[:8]
    days = form.get("expires_days", "")
    async with refused_back("panel.tenant_settings", tenant_id=tenant_id) as refused:
        if days and (not days.isdigit() or not 0 < int(days) <= 3650):
            raise InvalidInput("the expiry is a number of days from 1 to 3650")
        name = form.get("name", "").strip()[:200]
        if not name:
            raise InvalidInput("a token needs a name")
        token, credential = await tenants.create_token(rt(), scope, name, chosen,
                                                       int(days) * 86400 if days else None)
    if refused.response:
        return refused.response
    return await _settings_page(tenant_id, new_token={"name": token.name, "credential": credential})


@bp.post("/t/<uuid:tenant_id>/tokens/<uuid:token_id>/revoke")
async def token_revoke(tenant_id: uuid.UUID, token_id: uuid.UUID) -> Response:
    scope, _ = await _page(tenant_id, "admin")
    token = await scope.get(ApiToken, token_id, "token")
    await tenants.revoke_token(rt(), scope, token)
    await flash(f"Token {token.name} revoked.")
    return _back("panel.tenant_settings", tenant_id=tenant_id)


# --- enrolment ---------------------------------------------------------------------------

async def _enrol_page(tenant_id: uuid.UUID, **extra):
    scope, ctx = await _page(tenant_id)
    rows = await scope.query(JoinToken).order_by("-created_at").limit(100)
    max_ttl_min = rt().config.join_token_max_ttl_s // 60
    return await render_template("panel/enrol.html", **ctx, join_tokens=rows, state=agents.join_token_state,
                                 can_write="write" in scope.permissions,
                                 ttl_choices=[m for m in TTL_CHOICES_MIN if m <= max_ttl_min] or [max_ttl_min],
                                 pin=enrolment.ca_pin(rt().config), hub_url=rt().config.public_url, **extra)


@bp.get("/t/<uuid:tenant_id>/enrol")
async def enrol(tenant_id: uuid.UUID):
    return await _enrol_page(tenant_id)


@bp.post("/t/<uuid:tenant_id>/enrol")
async def enrol_create(tenant_id: uuid.UUID):
    scope, _ = await _page(tenant_id, "write")
    form = await _form()
    async with refused_back("panel.enrol", tenant_id=tenant_id) as refused:
        uses, minutes = form.get("uses", "1"), form.get("ttl_min", "60")
        if not uses.isdigit() or len(uses) > 6 or not minutes.isdigit() or len(minutes) > 6:
            raise InvalidInput("servers and minutes are whole numbers")
        labels = [x for x in form.get("labels", "").replace(",", " ").split() if x][:64]
        token, credential = await agents.create_join_token(rt(), scope, int(minutes) * 60, labels, int(uses))
    if refused.response:
        return refused.response
    return await _enrol_page(tenant_id, new_token={"token": token, "credential": credential,
                                                    "command": enrolment.enrol_command(rt().config, credential)})


@bp.post("/t/<uuid:tenant_id>/enrol/<uuid:join_token_id>/revoke")
async def enrol_revoke(tenant_id: uuid.UUID, join_token_id: uuid.UUID) -> Response:
    scope, _ = await _page(tenant_id, "write")
    token = await scope.get(JoinToken, join_token_id, "join token")
    await agents.revoke_join_token(rt(), scope, token)
    await flash("Join token revoked: it enrols no more servers.")
    return _back("panel.enrol", tenant_id=tenant_id)



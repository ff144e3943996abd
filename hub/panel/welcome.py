"""Pages for people without a session: accepting an invitation, resetting a password.

Their forms carry the panel cookie's token (signin.check_form_token), as the sign-in
form does. Neither page says whether an account exists to someone who does not already
hold a secret for it: the reset form answers the same for any address, and an
invitation page needs the invitation's token.
"""
from __future__ import annotations

from quart import Response, flash, redirect, render_template, session, url_for

from hub.errors import ClientError, NotFound, TooManyRequests
from hub.models import Tenant, User
from hub.panel import bp
from hub.panel.pages import _chrome, _form
from hub.panel.signin import begin, check_form_token, form_token
from hub.services import accounts, resets, tenants
from hub.web import client_address, current_session, principal, rt


async def _signed_in_user():
    found = await current_session()
    if found is None or not found[1].mfa_ok:
        return None, None
    p = await principal()
    return p, found[1].user


async def _invitation_page(token: str, status: int = 200, **extra):
    invitation = await tenants.open_invitation(token)
    tenant = await Tenant.get(id=invitation.tenant_id)
    p, user = await _signed_in_user()
    ctx = await _chrome(p) if p is not None else {"user": None, "tenants": [], "tenant": None, "csrf_token": ""}
    has_account = user is not None or await User.exists(email=invitation.email)
    return await render_template("panel/invitation.html", **ctx, invitation=invitation, invited_to=tenant,
                                 token=token, form_token=form_token(), signed_in_as=user,
                                 has_account=has_account, **extra), status


@bp.get("/invite/<string(maxlength=200):token>")
async def invitation(token: str):
    return await _invitation_page(token)


@bp.post("/invite/<string(maxlength=200):token>")
async def invitation_post(token: str) -> Response | tuple[str, int]:
    """A newcomer makes their account here; a signed-in invitee joins with one click."""
    form = await _form()
    p, user = await _signed_in_user()
    if user is not None:
        await principal()  # the session's CSRF token
        membership = await tenants.accept_invitation(rt(), p, token)
        await flash("Welcome: you joined the tenant.")
        return redirect(url_for("panel.dashboard", tenant_id=membership.tenant_id))
    check_form_token(form)
    if form.get("password", "") != form.get("repeat", ""):
        return await _invitation_page(token, 400, error="the two passwords differ")
    try:
        new_user, membership = await tenants.sign_up(rt(), token, form.get("password", "")[:2048], client_address())
    except ClientError as exc:
        if isinstance(exc, NotFound):
            raise
        return await _invitation_page(token, exc.status, error=exc.message)
    await accounts.signed_in(rt(), new_user, client_address())
    await begin(new_user, mfa_ok=True)  # just proved: fresh, so 2FA set-up can follow at once
    await flash("Your account is ready. Now protect it with a second factor: press “Set up 2FA”.")
    session["tenant"] = str(membership.tenant_id)
    return redirect(url_for("panel.account") + "#totp-h")


@bp.get("/reset")
async def reset_request() -> str:
    return await render_template("panel/reset_request.html", user=None, tenant=None, tenants=[],
                                 form_token=form_token())


@bp.post("/reset")
async def reset_request_post() -> Response | tuple[str, int]:
    form = await _form()
    check_form_token(form)
    try:
        await resets.request_reset(rt(), form.get("email", "")[:320], client_address())
    except TooManyRequests as exc:
        return await render_template("panel/reset_request.html", user=None, tenant=None, tenants=[],
                                     form_token=form_token(), error=exc.message), 429
    await flash("If that address has an account, an email with a link is on its way. The link works once, "
                f"for {resets.RESET_TTL_S // 60} minutes.")
    return redirect(url_for("panel.login"))


@bp.get("/reset/<string(maxlength=200):token>")
async def reset(token: str) -> str:
    reset_row = await resets.pending(token)
    return await render_template("panel/reset.html", user=None, tenant=None, tenants=[], token=token,
                                 email=reset_row.user.email, form_token=form_token())


@bp.post("/reset/<string(maxlength=200):token>")
async def reset_post(token: str) -> Response | tuple[str, int]:
    form = await _form()
    check_form_token(form)
    reset_row = await resets.pending(token)
    error = None
    if form.get("password", "") != form.get("repeat", ""):
        error = "the two passwords differ"
    else:
        try:
            await resets.redeem(rt(), token, form.get("password", "")[:2048], client_address())
        except ClientError as exc:
            if isinstance(exc, NotFound):
                raise
            error = exc.message
    if error:
        return await render_template("panel/reset.html", user=None, tenant=None, tenants=[], token=token,
                                     email=reset_row.user.email, form_token=form_token(), error=error), 400
    await flash("Password changed. Sign in with it now.")
    return redirect(url_for("panel.login"))

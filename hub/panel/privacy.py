"""The panel's privacy page: what the hub keeps about you and why, for how long, your
export, your sessions and second factor, and closing your account (with a fresh proof in
the same form: the password, and the code when 2FA is on)."""
from __future__ import annotations

from quart import Response, flash, redirect, render_template, url_for

from hub.errors import InvalidInput, Unauthenticated
from hub.models import Session
from hub.panel import bp
from hub.panel.pages import _chrome, _form, _user_principal, refused_back
from hub.services import accounts, erasure, retention
from hub.web import client_address, current_session, needs_2fa, rt

# What is collected, and why: the policy's "only what is needed", row by row.
COLLECTED = (
    ("Your email", "to sign you in and to tell you of security events; no real name is asked"),
    ("A password hash (argon2id)", "to check your password; the password itself is never stored"),
    ("Your second factor's secret, sealed", "to check your codes; encrypted with a key kept outside the database"),
    ("Sessions: the address you signed in from", "to show you where you are signed in and to end a session"),
    ("Failed sign-ins: account and address", "to slow down password guessing"),
    ("The audit log: who did what, when, from where", "so a tenant can tell who changed its protections"),
    ("What your agents report: hostnames, counters, dropped sources",
     "to show what your policies drop; the sampled addresses are the first to expire"),
    ("Billing: the Stripe customer and subscription ids", "to bill per protected server; Stripe holds the card"),
)


@bp.get("/privacy")
async def privacy() -> str:
    p = await _user_principal()
    chrome = await _chrome(p)
    found = await current_session()
    current = found[1].id_hash if found else None
    sessions = await Session.filter(user_id=p.user_id).order_by("-created_at")
    admin_tenants = [t for t, role in chrome["tenants"] if role in ("admin", "owner")]
    return await render_template("panel/privacy.html", **chrome, collected=COLLECTED,
                                 retention=retention.table(rt()), sessions=sessions, current=current,
                                 admin_tenants=admin_tenants, erasure_days=erasure.ERASURE_DAYS,
                                 setup_required=needs_2fa(chrome["user"]))


@bp.post("/privacy/sessions/end-others")
async def end_other_sessions() -> Response:
    p = await _user_principal()
    found = await current_session()
    if found is None:
        raise Unauthenticated("sign in first")
    ended = await accounts.end_other_sessions(await accounts.get_user(p.user_id), found[0])
    await rt().audit.append(actor=p.actor, action="auth.sessions.end", address=p.address, details={"ended": ended})
    await flash(f"{ended} other session(s) signed out")
    return redirect(url_for("panel.privacy"))


@bp.post("/privacy/close")
async def close_account() -> Response:
    p = await _user_principal()
    form = await _form()
    user = await accounts.get_user(p.user_id)
    async with refused_back("panel.privacy") as refused:
        if form.get("confirm") != "yes":
            raise InvalidInput("tick the box to confirm you want your account closed")
        try:
            await accounts.authenticate(rt(), user.email, form.get("password", "")[:1024], client_address())
            if user.totp_secret is not None:
                await accounts.second_factor(rt(), user, form.get("code", "")[:64], client_address())
        except Unauthenticated:
            raise InvalidInput("that password or code is not right") from None
        _, closed = await erasure.close_proven_account(rt(), user, address=p.address)
        await flash(f"Your account is closed and will be erased within {erasure.ERASURE_DAYS} days"
                    + (f", with {len(closed)} tenant(s) only you used." if closed else "."))
        return redirect(url_for("panel.login"))
    assert refused.response is not None
    return refused.response

"""Sign-in pages: password, then TOTP or a recovery code when the user has 2FA; sign out.

The password form has no hub session yet to hold a CSRF token, so its token lives in the
panel's signed cookie (Quart's session) and the form must echo it. Once a session exists
(pending or full), `principal()` checks the session's own token like every other write.
"""
from __future__ import annotations

import secrets

from quart import Response, flash, redirect, render_template, request, session, url_for
from quart_auth import logout_user

from hub.errors import Forbidden, TooManyRequests, Unauthenticated
from hub.panel import bp, safe_next
from hub.security import same
from hub.services import accounts
from hub.web import client_address, current_session, needs_2fa, principal, rt, start_session

LOGIN_TOKEN = "login_csrf"


def _login_token() -> str:
    if LOGIN_TOKEN not in session:
        session[LOGIN_TOKEN] = secrets.token_urlsafe(32)
    return session[LOGIN_TOKEN]


def check_form_token(form) -> None:  # noqa: ANN001 (a form MultiDict)
    """The CSRF check of a form shown before any hub session exists (sign-in, invitation,
    password reset): the token kept in the panel's signed cookie. Raises Forbidden."""
    if LOGIN_TOKEN not in session or not same(form.get("csrf_token", ""), session.get(LOGIN_TOKEN, "")):
        raise Forbidden("missing or wrong CSRF token")


def form_token() -> str:
    return _login_token()


async def begin(user, *, mfa_ok: bool) -> None:
    await start_session(user, mfa_ok=mfa_ok)




@bp.get("/login")
async def login() -> str:
    return await render_template("panel/login.html", csrf_token=_login_token(),
                                 next=safe_next(request.args.get("next")))


@bp.post("/login")
async def login_post() -> Response | tuple[str, int]:
    form = await request.form
    next_url = safe_next(form.get("next"))
    check_form_token(form)
    try:
        user = await accounts.authenticate(rt(), form.get("email", "")[:320], form.get("password", "")[:1024],
                                           client_address())
    except (Unauthenticated, TooManyRequests) as exc:
        return await render_template("panel/login.html", csrf_token=_login_token(), next=next_url,
                                     error=exc.message, email=form.get("email", "")[:320]), exc.status
    session.pop(LOGIN_TOKEN, None)
    needs_mfa = user.totp_secret is not None
    await begin(user, mfa_ok=not needs_mfa)
    if needs_mfa:
        return redirect(url_for("panel.second_factor", next=next_url))
    await accounts.signed_in(rt(), user, client_address())
    if needs_2fa(user):
        await flash("Every account needs two-factor authentication: set it up now to go on.")
        return redirect(url_for("panel.account") + "#totp-h")
    return redirect(next_url)


async def _pending():
    found = await current_session()
    if found is None:
        raise Unauthenticated("sign in with your password first")
    return found[1]


@bp.get("/login/code")
async def second_factor() -> Response | str:
    pending = await _pending()
    if pending.mfa_ok:
        return redirect(safe_next(request.args.get("next")))
    return await render_template("panel/second_factor.html", csrf_token=pending.csrf_token,
                                 next=safe_next(request.args.get("next")))


@bp.post("/login/code")
async def second_factor_post() -> Response | tuple[str, int]:
    pending = await _pending()
    await principal(allow_partial=True)  # the pending session's CSRF token
    form = await request.form
    next_url = safe_next(form.get("next"))
    user = pending.user
    try:
        await accounts.second_factor(rt(), user, form.get("code", "")[:64], client_address())
    except (Unauthenticated, TooManyRequests) as exc:
        return await render_template("panel/second_factor.html", csrf_token=pending.csrf_token,
                                     next=next_url, error=exc.message), exc.status
    await accounts.signed_in(rt(), user, client_address(), mfa=True)
    await begin(user, mfa_ok=True)
    return redirect(next_url)


@bp.post("/logout")
async def logout() -> Response:
    found = await current_session()
    if found is not None:
        await principal(allow_partial=True)
        await accounts.close_session(found[0])
    logout_user()
    return redirect(url_for("panel.login"))



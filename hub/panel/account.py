"""The account page: a fresh proof, password change, 2FA set-up (QR code), recovery
codes, sessions. The same service calls and the same rules as /auth: a change of password
or factor needs a session opened by a full sign-in within 5 minutes (the "confirm it is
you" form gives one without signing out) and ends every other session.

Secrets (the TOTP secret while set-up is pending, recovery codes) are rendered into the
answer to the POST that made them, never behind a GET that could be replayed later;
every dynamic answer is `Cache-Control: no-store` (hub.headers).
"""
from __future__ import annotations

import datetime as dt
import uuid

import pyotp
import segno
from quart import Response, flash, redirect, render_template, request, session, url_for
from quart_auth import logout_user

from hub.errors import ClientError, Forbidden, InvalidInput, TooManyRequests, Unauthenticated
from hub.panel import bp
from hub.panel.pages import LAST_TENANT, _chrome, _form, _user_principal
from hub.panel.signin import begin
from hub.services import accounts, alerts, email_change
from hub.web import client_address, current_session, needs_2fa, rt


async def _me():
    """(principal, user, session id, session) of the signed-in browser."""
    p = await _user_principal()
    found = await current_session()
    if found is None:
        raise Unauthenticated("sign in first")
    return p, await accounts.get_user(p.user_id), found[0], found[1]


def _fresh_until(s) -> dt.datetime | None:
    until = s.created_at + dt.timedelta(seconds=accounts.FRESH_PROOF_S)
    return until if s.mfa_ok and until > accounts.now() else None


def qr_data_uri(uri: str) -> str:
    """The otpauth URI as an SVG QR code in a data: URI (CSP: img-src 'self' data:)."""
    return segno.make(uri, error="m").svg_data_uri(scale=5, border=2, dark="#152238")


BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"),
            ("Safari/", "Safari"), ("curl/", "curl"), ("python-httpx", "httpx"))
SYSTEMS = (("Windows", "Windows"), ("Android", "Android"), ("iPhone", "iOS"), ("Mac OS X", "macOS"),
           ("Linux", "Linux"))


def browser_of(user_agent: str) -> str:
    """A person's name for a User-Agent ("Chrome on Linux"): enough to tell sessions apart."""
    browser = next((name for key, name in BROWSERS if key in user_agent), "")
    system = next((name for key, name in SYSTEMS if key in user_agent), "")
    if not browser:
        return user_agent[:40] or "unknown"
    return f"{browser} on {system}" if system else browser


def _grouped(secret: str) -> str:
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


async def _render(p, user, s, status: int = 200, **extra):
    last = session.get(LAST_TENANT)
    try:
        tenant_id = uuid.UUID(last) if last else None
    except ValueError:
        tenant_id = None
    ctx = await _chrome(p, tenant_id)
    if ctx["tenant"] is not None and not any(t.id == ctx["tenant"].id for t, _ in ctx["tenants"]):
        ctx["tenant"] = None
    fresh = _fresh_until(s)
    pending = None
    if fresh and user.totp_pending_secret:
        secret = rt().sealer.open(accounts.PENDING_COLUMN, user.totp_pending_secret)  # stored sealed
        uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name="Bulwark")
        pending = {"qr": qr_data_uri(uri), "secret": _grouped(secret), "uri": uri}
    listed = await accounts.sessions_of(user)
    asked = await user.email_changes.filter(used_at__isnull=True, expires_at__gt=accounts.now()).first()
    return await render_template(
        "panel/account.html", **ctx, fresh_until=fresh, pending=pending, me=user, setup_required=needs_2fa(user),
        sessions=[(accounts.session_handle(x), x, x.id_hash == s.id_hash) for x in listed],
        unused_codes=await user.recovery_codes.filter(used_at__isnull=True).count(), browser_of=browser_of,
        email_asked=asked,
        **extra), status


@bp.get("/account")
async def account() -> tuple[str, int]:
    p, user, _, s = await _me()
    return await _render(p, user, s)


async def _refused(p, user, s, exc) -> tuple[str, int]:
    return await _render(p, user, s, status=exc.status, error=exc.message)


def _require_fresh(s) -> None:
    if _fresh_until(s) is None:
        raise Forbidden("confirm it is you first (your password and current code), then try again")


@bp.post("/account/confirm")
async def account_confirm() -> Response | tuple[str, int]:
    """The fresh proof: password and current code give a new session (5 minutes fresh)."""
    p, user, _, s = await _me()
    form = await _form()
    try:
        checked = await accounts.authenticate(rt(), user.email, form.get("password", "")[:1024], client_address())
        if checked.totp_secret is not None:
            await accounts.second_factor(rt(), checked, form.get("code", "")[:64], client_address())
    except (Unauthenticated, TooManyRequests) as exc:
        return await _refused(p, user, s, exc)
    await rt().audit.append(actor=p.actor, action="auth.reauth", address=p.address)
    await begin(checked, mfa_ok=True)
    await flash("Confirmed: for the next 5 minutes you can change your password and 2FA.")
    return redirect(url_for("panel.account"))


@bp.post("/account/password")
async def account_password() -> Response | tuple[str, int]:
    p, user, session_id, s = await _me()
    form = await _form()
    try:
        _require_fresh(s)
        if form.get("new_password", "") != form.get("repeat", ""):
            raise InvalidInput("the two new passwords differ")
        await accounts.change_password(rt(), user, form.get("new_password", "")[:2048])
    except (Forbidden, InvalidInput) as exc:
        return await _refused(p, user, s, exc)
    ended = await accounts.end_other_sessions(user, session_id)
    await rt().audit.append(actor=p.actor, action="auth.password", address=p.address, details={"ended": ended})
    await alerts.account_event(rt(), user.id, f"the password of {user.email} was changed", "auth.password")
    await flash(f"Password changed. {ended} other session(s) signed out.")
    return redirect(url_for("panel.account"))


@bp.post("/account/email")
async def account_email() -> Response | tuple[str, int]:
    """Ask to change the email: a fresh proof, then a link to the new address."""
    p, user, _, s = await _me()
    form = await _form()
    try:
        _require_fresh(s)
        new = await email_change.request_change(rt(), user, form.get("new_email", "")[:400], p.actor, p.address)
    except ClientError as exc:  # malformed, taken, same, throttled: shown on the page
        return await _refused(p, user, s, exc)
    await flash(f"A link is on its way to {new}: open it within {email_change.CHANGE_TTL_S // 60} minutes, "
                "signed in as you are now, to make the change.")
    return redirect(url_for("panel.account") + "#email-h")


@bp.get("/account/email/<string(maxlength=200):token>")
async def account_email_link(token: str) -> str:
    """The link from the email: says what will change; the POST makes the change."""
    p, user, _, s = await _me()
    change = await email_change.pending(user, token)
    ctx = await _chrome(p)
    return await render_template("panel/email_change.html", **ctx, change=change, token=token, me=user)


@bp.post("/account/email/<string(maxlength=200):token>")
async def account_email_confirm(token: str) -> Response:
    p, user, _, s = await _me()
    new = await email_change.confirm(rt(), user, token, s.id_hash, p.address)
    await flash(f"Your email is {new} now. Your other sessions were signed out; the old address was told.")
    return redirect(url_for("panel.account"))


@bp.post("/account/2fa/setup")
async def account_totp_setup() -> Response | tuple[str, int]:
    p, user, _, s = await _me()
    try:
        _require_fresh(s)
    except Forbidden as exc:
        return await _refused(p, user, s, exc)
    await accounts.begin_totp(rt(), user)
    return await _render(p, user, s)


@bp.post("/account/2fa/confirm")
async def account_totp_confirm() -> Response | tuple[str, int]:
    p, user, session_id, s = await _me()
    try:
        _require_fresh(s)
        codes = await accounts.confirm_totp(rt(), user, (await _form()).get("code", "")[:64])
    except ClientError as exc:  # a wrong code, no set-up pending: shown on the page
        return await _refused(p, user, s, exc)
    await accounts.end_other_sessions(user, session_id)
    await rt().audit.append(actor=p.actor, action="auth.2fa.enable", address=p.address)
    await alerts.account_event(rt(), user.id, f"2FA was turned on for {user.email}", "auth.2fa.enable")
    return await _render(p, user, s, codes=codes, codes_reason="2FA is on.")


@bp.post("/account/2fa/recovery-codes")
async def account_recovery_codes() -> Response | tuple[str, int]:
    p, user, session_id, s = await _me()
    try:
        _require_fresh(s)
        await accounts.second_factor(rt(), user, (await _form()).get("code", "")[:64], client_address())
    except (Forbidden, Unauthenticated, TooManyRequests) as exc:
        return await _refused(p, user, s, exc)
    codes = await accounts.new_recovery_codes(user)
    await accounts.end_other_sessions(user, session_id)
    await rt().audit.append(actor=p.actor, action="auth.2fa.recovery_codes", address=p.address)
    await alerts.account_event(rt(), user.id, f"new recovery codes were made for {user.email}",
                               "auth.2fa.recovery_codes")
    return await _render(p, user, s, codes=codes, codes_reason="New recovery codes: the old ones no longer work.")


@bp.post("/account/sessions/<string(maxlength=64):handle>/end")
async def account_session_end(handle: str) -> Response:
    p, user, _, s = await _me()
    if handle == accounts.session_handle(s):
        raise InvalidInput("that is this session: use Sign out")
    if await accounts.end_session(user, handle):
        await rt().audit.append(actor=p.actor, action="auth.session.end", address=p.address, target=handle)
        await flash("That session is signed out.")
    else:
        await flash("That session had already ended.", "error")
    return redirect(url_for("panel.account"))


@bp.post("/account/sessions/end-all")
async def account_sessions_end_all() -> Response:
    p, user, _, _ = await _me()
    ended = await accounts.end_all_sessions(user)
    await rt().audit.append(actor=p.actor, action="auth.logout_everywhere", address=p.address,
                            details={"ended": ended})
    logout_user()
    await flash(f"Signed out everywhere ({ended} session(s)).")
    return redirect(url_for("panel.login"))

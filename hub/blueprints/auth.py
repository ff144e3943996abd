"""Browser sign-in: password, second factor, sessions, TOTP set-up, recovery codes.

Sign-in takes JSON only: a cross-site HTML form cannot send `application/json` without
a CORS preflight, which is the login form's CSRF defence (there is no session yet to
hold a token). Every later cookie-authenticated write carries the session's CSRF token.
"""
from __future__ import annotations

from pydantic import Field
from quart import Blueprint, Response, jsonify, request
from quart_auth import logout_user
from quart_schema import validate_request

from hub.api_schemas.common import Strict
from hub.errors import Conflict, Unauthenticated
from hub.services import accounts, alerts
from hub.web import client_address, current_session, needs_2fa, principal, rt, start_session

bp = Blueprint("auth", __name__, url_prefix="/auth")


class LoginIn(Strict):
    email: str
    password: str


class CodeIn(Strict):
    code: str


class ReauthIn(Strict):
    password: str = Field(max_length=1024)
    code: str | None = Field(default=None, max_length=64)


class PasswordIn(Strict):
    new_password: str = Field(max_length=1024)


def _session_body(session, *, mfa_required: bool) -> dict:
    """`setup_required`: the account has no 2FA yet, so this session reaches only the
    set-up (hub.web.BEFORE_2FA) until /auth/2fa/confirm succeeds."""
    return {"mfa_required": mfa_required, "csrf_token": session.csrf_token,
            "setup_required": needs_2fa(session.user)}


async def _start_session(user, *, mfa_ok: bool) -> Response:
    session = await start_session(user, mfa_ok=mfa_ok)
    return jsonify(_session_body(session, mfa_required=not mfa_ok))


@bp.post("/login")
@validate_request(LoginIn)
async def login(data: LoginIn) -> Response:
    user = await accounts.authenticate(rt(), data.email, data.password, client_address())
    needs_mfa = user.totp_secret is not None
    response = await _start_session(user, mfa_ok=not needs_mfa)
    if not needs_mfa:
        await accounts.signed_in(rt(), user, client_address())
    return response


@bp.post("/second-factor")
@validate_request(CodeIn)
async def second_factor(data: CodeIn) -> Response:
    found = await current_session()
    if found is None:
        raise Unauthenticated("sign in with your password first")
    _, session = found
    await principal(allow_partial=True)  # CSRF check for the pending session
    user = session.user
    await accounts.second_factor(rt(), user, data.code, client_address())
    await accounts.signed_in(rt(), user, client_address(), mfa=True)
    return await _start_session(user, mfa_ok=True)


@bp.post("/logout")
async def logout() -> Response:
    found = await current_session()
    if found is not None:
        await principal(allow_partial=True)
        await accounts.close_session(found[0])
    logout_user()
    return jsonify({"signed_out": True})


@bp.get("/me")
async def me() -> Response:
    p = await principal()
    if p.user_id is None:
        raise Unauthenticated("this is for signed-in users")
    user = await accounts.get_user(p.user_id)
    found = await current_session()
    return jsonify({
        "id": str(user.id), "email": user.email, "platform_admin": user.is_platform_admin,
        "totp": user.totp_secret is not None, "csrf_token": found[1].csrf_token if found else None,
        "setup_required": needs_2fa(user),
    })


async def _fresh_user():
    """The signed-in browser user, with a fresh proof (accounts.require_fresh); API tokens
    cannot change a person's password or factors. Returns (principal, user, session id)."""
    p = await principal()
    found = await current_session()
    if p.user_id is None or found is None or request.headers.get("Authorization"):
        raise Unauthenticated("this is for signed-in users")
    session_id, session = found
    accounts.require_fresh(session)
    return p, await accounts.get_user(p.user_id), session_id


@bp.post("/reauth")
@validate_request(ReauthIn)
async def reauth(data: ReauthIn) -> Response:
    """A fresh proof without signing out: password and (with 2FA) the current code give a
    new session good for changes of password and factors for 5 minutes."""
    p = await principal()
    if p.user_id is None or await current_session() is None:
        raise Unauthenticated("this is for signed-in users")
    user = await accounts.get_user(p.user_id)
    user = await accounts.authenticate(rt(), user.email, data.password, client_address())
    if user.totp_secret is not None:
        await accounts.second_factor(rt(), user, data.code or "", client_address())
    await rt().audit.append(actor=p.actor, action="auth.reauth", address=p.address)
    return await _start_session(user, mfa_ok=True)


@bp.post("/password")
@validate_request(PasswordIn)
async def change_password(data: PasswordIn) -> Response:
    p, user, session_id = await _fresh_user()
    await accounts.change_password(rt(), user, data.new_password)
    ended = await accounts.end_other_sessions(user, session_id)
    await rt().audit.append(actor=p.actor, action="auth.password", address=p.address, details={"ended": ended})
    await alerts.account_event(rt(), user.id, f"the password of {user.email} was changed", "auth.password")
    return jsonify({"changed": True, "other_sessions_ended": ended})


@bp.post("/2fa/setup")
async def totp_setup() -> Response:
    _, user, _ = await _fresh_user()
    return jsonify({"otpauth_uri": await accounts.begin_totp(rt(), user)})


@bp.post("/2fa/confirm")
@validate_request(CodeIn)
async def totp_confirm(data: CodeIn) -> Response:
    p, user, session_id = await _fresh_user()
    codes = await accounts.confirm_totp(rt(), user, data.code)
    await accounts.end_other_sessions(user, session_id)
    await rt().audit.append(actor=p.actor, action="auth.2fa.enable", address=p.address)
    await alerts.account_event(rt(), user.id, f"2FA was turned on for {user.email}", "auth.2fa.enable")
    return jsonify({"recovery_codes": codes})


@bp.post("/2fa/disable")
@validate_request(CodeIn)
async def totp_disable(data: CodeIn) -> Response:
    p, user, session_id = await _fresh_user()
    if not rt().config.allow_accounts_without_2fa:
        raise Conflict("every account needs 2FA here: move it to a new device (POST /auth/2fa/setup) instead")
    await accounts.second_factor(rt(), user, data.code, p.address)
    await accounts.disable_totp(user)
    await accounts.end_other_sessions(user, session_id)
    await rt().audit.append(actor=p.actor, action="auth.2fa.disable", address=p.address)
    await alerts.account_event(rt(), user.id, f"2FA was turned off for {user.email}", "auth.2fa.disable")
    return jsonify({"totp": False})


@bp.post("/2fa/recovery-codes")
@validate_request(CodeIn)
async def recovery_codes(data: CodeIn) -> Response:
    p, user, session_id = await _fresh_user()
    await accounts.second_factor(rt(), user, data.code, p.address)
    codes = await accounts.new_recovery_codes(user)
    await accounts.end_other_sessions(user, session_id)
    await rt().audit.append(actor=p.actor, action="auth.2fa.recovery_codes", address=p.address)
    await alerts.account_event(rt(), user.id, f"new recovery codes were made for {user.email}",
                               "auth.2fa.recovery_codes")
    return jsonify({"recovery_codes": codes})

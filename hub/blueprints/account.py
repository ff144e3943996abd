"""The signed-in person's own account under /api/v1: their sessions, and the password
reset (which needs no sign-in: the emailed link is the proof).

Sessions are a person's, not a tenant's: API tokens (bound to a tenant) get 401 here.
"""
from __future__ import annotations

from typing import Any

from quart import Blueprint, request
from quart_schema import security_scheme, tag_blueprint, validate_request

from hub.api_schemas.account import (
    EmailChangedOut,
    EmailChangeIn,
    EmailChangeQueuedOut,
    EmailConfirmIn,
    EndedOut,
    ResetConfirmIn,
    ResetDoneOut,
    ResetIn,
    ResetQueuedOut,
    SessionsOut,
)
from hub.api_schemas.common import responds
from hub.errors import NotFound, Unauthenticated
from hub.services import accounts, email_change, resets
from hub.web import client_address, current_session, principal, rt

bp = Blueprint("account", __name__, url_prefix="/api/v1")
tag_blueprint(bp, ["account"])
HANDLE_MAX = 64


async def _own():
    """The browser user and their session id. Raises Unauthenticated for API tokens."""
    p = await principal()
    found = await current_session()
    if p.user_id is None or found is None or request.headers.get("Authorization"):
        raise Unauthenticated("this is for signed-in users")
    return p, await accounts.get_user(p.user_id), found


def session_json(s: Any, current_hash: str) -> dict[str, Any]:
    return {"id": accounts.session_handle(s), "address": s.address, "user_agent": s.user_agent,
            "created_at": s.created_at, "expires_at": s.expires_at, "current": s.id_hash == current_hash}


@bp.get("/sessions")
@responds(SessionsOut, errors=(401,))
async def list_sessions() -> dict[str, Any]:
    """Where the caller is signed in, newest first."""
    _, user, (_, current) = await _own()
    return {"sessions": [session_json(s, current.id_hash) for s in await accounts.sessions_of(user)]}


@bp.delete("/sessions/<string(maxlength=64):handle>")
@responds(EndedOut, errors=(401, 403, 404))
async def end_session(handle: str) -> dict[str, Any]:
    """Sign one session out (the caller's own, by its handle)."""
    p, user, _ = await _own()
    if not await accounts.end_session(user, handle):
        raise NotFound("session")
    await rt().audit.append(actor=p.actor, action="auth.session.end", address=p.address, target=handle)
    return {"ended": 1}


@bp.delete("/sessions")
@responds(EndedOut, errors=(401, 403))
async def end_all_sessions() -> dict[str, Any]:
    """Sign out everywhere, this session included."""
    p, user, _ = await _own()
    ended = await accounts.end_all_sessions(user)
    await rt().audit.append(actor=p.actor, action="auth.logout_everywhere", address=p.address,
                            details={"ended": ended})
    return {"ended": ended}


@bp.post("/password-reset")
@responds(ResetQueuedOut, 202, errors=(400, 413, 429))
@security_scheme([])
@validate_request(ResetIn)
async def request_reset(data: ResetIn) -> tuple[dict[str, Any], int]:
    """Email a single-use reset link (1 hour) if the address has an account; the answer
    is the same either way."""
    await resets.request_reset(rt(), data.email, client_address())
    return {"queued": True}, 202


@bp.post("/password-reset/confirm")
@responds(ResetDoneOut, errors=(400, 404, 413))
@security_scheme([])
@validate_request(ResetConfirmIn)
async def confirm_reset(data: ResetConfirmIn) -> dict[str, Any]:
    """Choose the new password with the link's secret; every session of the account ends."""
    await resets.redeem(rt(), data.token, data.new_password, client_address())
    return {"changed": True}


@bp.post("/account/email")
@responds(EmailChangeQueuedOut, 202, errors=(400, 401, 403, 409, 413, 429))
@validate_request(EmailChangeIn)
async def request_email_change(data: EmailChangeIn) -> tuple[dict[str, Any], int]:
    """Correct your email: needs a fresh proof (POST /auth/reauth within 5 minutes). A
    single-use link (1 hour) goes to the new address; the change happens when it is used."""
    p, user, (_, session) = await _own()
    accounts.require_fresh(session)
    new = await email_change.request_change(rt(), user, data.new_email, p.actor, p.address)
    return {"queued": True, "new_email": new, "expires_in_s": email_change.CHANGE_TTL_S}, 202


@bp.post("/account/email/confirm")
@responds(EmailChangedOut, errors=(400, 401, 403, 404, 409, 413))
@validate_request(EmailConfirmIn)
async def confirm_email_change(data: EmailConfirmIn) -> dict[str, Any]:
    """Use the link's secret, signed in as the account that asked (another account's link,
    a used or an expired one: 404). The old address is told; other sessions end."""
    p, user, (_, session) = await _own()
    new = await email_change.confirm(rt(), user, data.token, session.id_hash, p.address)
    return {"email": new, "other_sessions_ended": True}

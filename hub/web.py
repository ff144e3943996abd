"""The HTTP side of access: who is calling, CSRF, and the tenant-route decorator.

`tenant_route(need)` is how every `/api/v1/tenants/<tenant_id>/...` handler gets its
`TenantScope`; it also loads each object named in the path (`agent_id` → `agent`, ...)
through that scope, so a handler never sees another tenant's object and cannot forget
to check. The permission is recorded on the view (`bulwark_permission`) for the
route-table isolation test.
"""
from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from quart import Request, current_app, g, request
from quart_auth import AuthUser, current_user, login_user
from werkzeug.routing import IntegerConverter

from hub import callers, json_bounds
from hub.api_schemas.common import MAX_INT32
from hub.errors import ClientError, Forbidden, InvalidInput, PayloadTooLarge, SecondFactorRequired, Unauthenticated
from hub.models import (
    Agent, AlertChannel, ApiToken, Deployment, Invitation, IpList, JoinToken, Membership, OutboxMessage, Policy,
)
from hub.runtime import Runtime
from hub.security import same
from hub.services import accounts, tenants
from hub.services.scope import Principal, resolve_scope

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
CSRF_HEADER = "X-CSRF-Token"

# Path parameter → (model, name of the handler argument that receives the object).
PATH_OBJECTS: dict[str, tuple[type, str]] = {
    "agent_id": (Agent, "agent"),
    "policy_id": (Policy, "policy"),
    "deployment_id": (Deployment, "deployment"),
    "list_id": (IpList, "ip_list"),
    "token_id": (ApiToken, "token"),
    "member_id": (Membership, "membership"),
    "channel_id": (AlertChannel, "channel"),
    "message_id": (OutboxMessage, "message"),
    "join_token_id": (JoinToken, "join_token"),
    "invitation_id": (Invitation, "invitation"),
}


# "2FA for every account": what a signed-in user without TOTP may still reach (set it up,
# sign out, take their data away or close the account). Every other endpoint answers
# SecondFactorRequired (403 JSON; the panel redirects to the set-up). One table, so the
# limited session's reach is read in one place (tests/hub/test_enforce_2fa.py checks it).
BEFORE_2FA = frozenset({
    "auth.me", "auth.reauth", "auth.totp_setup", "auth.totp_confirm", "auth.logout",
    "privacy.my_export", "privacy.close_me",
    "panel.account", "panel.account_confirm", "panel.account_totp_setup", "panel.account_totp_confirm",
    "panel.logout", "panel.account_sessions_end_all", "panel.account_session_end", "panel.privacy",
    "panel.end_other_sessions", "panel.close_account",
})


def needs_2fa(user: Any) -> bool:
    """Whether this user must enrol TOTP before anything but BEFORE_2FA."""
    return user.totp_secret is None and not rt().config.allow_accounts_without_2fa


def check_2fa(user: Any) -> None:
    """Raises SecondFactorRequired for a user without TOTP outside BEFORE_2FA."""
    if needs_2fa(user) and request.endpoint not in BEFORE_2FA:
        raise SecondFactorRequired(
            "this account has no second factor yet, and every account needs one: set up 2FA "
            "(POST /auth/2fa/setup then /auth/2fa/confirm, or the panel's /account page) to go on")


class IntIdConverter(IntegerConverter):
    """`<int:...>` in paths: numbers beyond the database's 32-bit integer columns match no
    route (404) instead of overflowing in the database driver (500)."""

    def __init__(self, map: Any, fixed_digits: int = 0, min: int | None = None,  # noqa: A002
                 max: int | None = MAX_INT32, signed: bool = False) -> None:  # noqa: A002
        super().__init__(map, fixed_digits, min, max, signed)


class HubRequest(Request):
    """Quart decodes a body strictly before parsing JSON, so a body that is not UTF-8 would
    escape as UnicodeDecodeError (a 500); it is the caller's mistake like any bad JSON."""

    async def get_data(self, cache: bool = True, as_text: bool = False, parse_form_data: bool = False) -> Any:
        try:
            return await super().get_data(cache, as_text, parse_form_data)
        except UnicodeDecodeError:
            raise InvalidInput("the body is not UTF-8 text") from None


def rt() -> Runtime:
    return current_app.extensions["bulwark"]


def client_address() -> str:
    """The caller's address, through `trusted_proxies` (hub.callers)."""
    return callers.client_address(request.remote_addr or "", request.headers.getlist("X-Forwarded-For"),
                                    rt().config.trusted_proxies)


async def current_session() -> tuple[str, Any] | None:
    session_id = current_user.auth_id
    if not session_id:
        return None
    session = await accounts.load_session(session_id)
    return None if session is None else (session_id, session)


async def start_session(user: Any, *, mfa_ok: bool) -> Any:
    """A fresh session id for every sign-in step (the old one, pending or not, is closed),
    for the API and the panel alike. Returns the new session."""
    old = await current_session()
    if old is not None:
        await accounts.close_session(old[0])
    session_id, session = await accounts.open_session(rt(), user, client_address(), mfa_ok=mfa_ok,
                                                      user_agent=request.headers.get("User-Agent", ""))
    login_user(AuthUser(session_id))
    return session


def session_principal(session: Any, address: str) -> Principal:
    user = session.user
    # A platform operator acts as one only with 2FA on: their powers span every tenant.
    return Principal(actor=f"user:{user.email}", address=address, user_id=user.id,
                     is_platform_admin=user.is_platform_admin and user.totp_secret is not None)


def access_check(tenant_id: uuid.UUID, need: str) -> Callable[[], Awaitable[bool]]:
    """For answers that outlive their request (SSE): a check, made again later, that this
    request's credential (token or session) is still valid and still has `need` on the
    tenant. Captured now, while the request is at hand."""
    auth = request.headers.get("Authorization", "")
    token = auth[7:].strip() if auth[:7].lower() == "bearer " else None
    session_id = None if token is not None else current_user.auth_id
    address = client_address()

    async def still_allowed() -> bool:
        try:
            if token is not None:
                p = await tenants.authenticate_token(token, address)
            else:
                session = await accounts.load_session(session_id) if session_id else None
                if session is None or not session.mfa_ok or needs_2fa(session.user):
                    return False
                p = session_principal(session, address)
            await resolve_scope(p, tenant_id, need)
        except ClientError:
            return False
        return True

    return still_allowed


async def principal(*, allow_partial: bool = False) -> Principal:
    """The authenticated caller. Raises Unauthenticated, Forbidden (CSRF)."""
    cached = g.get("bulwark_principal")
    if cached is not None:
        return cached
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        p = await tenants.authenticate_token(auth[7:].strip(), client_address())
    else:
        found = await current_session()
        if found is None:
            raise Unauthenticated("sign in or send an API token")
        _, session = found
        if not session.mfa_ok and not allow_partial:
            raise Unauthenticated("finish signing in with your second factor")
        if session.mfa_ok:
            check_2fa(session.user)
        if request.method in UNSAFE:
            await check_csrf(session.csrf_token)
        p = session_principal(session, client_address())
        if not session.mfa_ok:
            return p  # not cached: a partial session must never satisfy a full check
    g.bulwark_principal = p
    return p


async def check_csrf(expected: str) -> None:
    """Synchronizer token: cookie-authenticated writes must echo the session's token."""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.mimetype in {"application/x-www-form-urlencoded", "multipart/form-data"}:
        sent = (await request.form).get("csrf_token")
    if not sent or not same(sent, expected):
        raise Forbidden("missing or wrong CSRF token")


def tenant_route(need: str) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
    def decorate(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(handler)
        async def wrapper(*args: Any, tenant_id: uuid.UUID, **kwargs: Any) -> Any:
            scope = await resolve_scope(await principal(), tenant_id, need)
            for param, (model, arg) in PATH_OBJECTS.items():
                if param in kwargs:
                    kwargs[arg] = await scope.get(model, kwargs.pop(param), arg.replace("_", " "))
            return await handler(*args, scope=scope, **kwargs)

        wrapper.bulwark_permission = need  # type: ignore[attr-defined]
        return wrapper

    return decorate


async def read_json(limit: int | None = None) -> Any:
    """The request body as JSON, refusing bodies over `limit` bytes before parsing."""
    limit = limit or rt().config.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"the body may have at most {limit} bytes")
    body = await request.get_data(cache=True, as_text=False)
    if len(body) > limit:
        raise PayloadTooLarge(f"the body may have at most {limit} bytes")
    try:
        return json_bounds.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"the body is not JSON: {exc}") from None

"""Password resets: a single-use link that expires, sent by email through the outbox,
or issued by an operator (`bulwark hub reset-link EMAIL`) where no mail is set up.

Invariants:
- Asking for a reset answers the same whether or not the address has an account: the
  email is queued only when it does, and the answer never says.
- The link carries a secret; only its sha256 is stored. It works once (a conditional
  UPDATE claims it) and for `RESET_TTL_S`; asking again replaces any earlier link.
- Using it sets the password and ends every session of the account. 2FA stays on: a
  reset proves the mailbox, not the second factor, so sign-in still asks for the code.
"""
from __future__ import annotations

import datetime as dt

from hub import callers
from hub.errors import NotFound
from hub.models import PasswordReset, Session, User
from hub.runtime import Runtime
from hub.security import digest, new_secret
from hub.services import outbox
from hub.services.accounts import Attempt, change_password, check_password_strength, normalise_email, now

RESET_TTL_S = 3600
RESET_PATH = "/reset/"


def reset_link(rt: Runtime, secret: str) -> str:
    return rt.config.public_url.rstrip("/") + RESET_PATH + secret


async def _new_link(rt: Runtime, user: User) -> str:
    await PasswordReset.filter(user_id=user.id).delete()
    secret = new_secret()
    await PasswordReset.create(user=user, token_hash=digest(secret),
                               expires_at=now() + dt.timedelta(seconds=RESET_TTL_S))
    return reset_link(rt, secret)


async def request_reset(rt: Runtime, email: str, address: str) -> None:
    """Queue the reset email if `email` has an account. Raises TooManyRequests (by
    address and by the address asked about, whether or not it exists), never anything
    that depends on the account existing."""
    try:
        email = normalise_email(email)
    except Exception:  # noqa: BLE001 (a malformed address gets the same answer as an unknown one)
        return
    limit = rt.config.login_max_failures
    await Attempt(rt, [(f"reset:{callers.throttle_key(address)}", limit * 2), (f"reset:{email}", limit)]).begin()
    user = await User.get_or_none(email=email)
    if user is None:
        return
    link = await _new_link(rt, user)
    text = (f"Someone (you, we hope) asked to reset the password of {email} on Bulwark.\n\n"
            f"Choose a new one here within {RESET_TTL_S // 60} minutes; the link works once:\n{link}\n\n"
            "If it was not you, ignore this email: your password stays as it is.\n")
    await outbox.email_person(email, "[Bulwark] Reset your password", text)
    await rt.audit.append(actor="hub", action="auth.reset.request", target=email, address=address)


async def issue_link(rt: Runtime, email: str) -> str:
    """The operator's fallback: a link to hand over by other means. Raises NotFound."""
    user = await User.get_or_none(email=email.strip().lower())
    if user is None:
        raise NotFound("user")
    link = await _new_link(rt, user)
    await rt.audit.append(actor="cli", action="auth.reset.issue", target=user.email)
    return link


async def pending(secret: str) -> PasswordReset:
    """The unused, unexpired reset this secret opens. Raises NotFound."""
    if not secret or len(secret) > 200:
        raise NotFound("reset link")
    reset = await PasswordReset.get_or_none(token_hash=digest(secret), used_at__isnull=True) \
        .prefetch_related("user")
    if reset is None or reset.expires_at <= now():
        raise NotFound("reset link")
    return reset


async def redeem(rt: Runtime, secret: str, new_password: str, address: str) -> User:
    """Set the new password with the link, once. Raises NotFound, InvalidInput."""
    from hub.services import alerts

    reset = await pending(secret)
    check_password_strength(new_password)
    if not await PasswordReset.filter(id=reset.id, used_at__isnull=True).update(used_at=now()):
        raise NotFound("reset link")
    user = reset.user
    await change_password(rt, user, new_password)
    ended = await Session.filter(user_id=user.id).delete()
    await rt.audit.append(actor=f"user:{user.email}", action="auth.reset", target=user.email, address=address,
                          details={"ended": ended})
    await alerts.account_event(rt, user.id, f"the password of {user.email} was reset", "auth.reset")
    return user

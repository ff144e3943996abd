"""A person corrects their own email (the privacy policy's "... correct it").

Invariants:
- Asking needs a fresh proof (accounts.require_fresh: password and code within 5
  minutes); the new address must be well-formed and no other account's.
- The change happens only through the link sent to the new address, used by the same
  signed-in user: that proves the mailbox is theirs and that the link was not forwarded
  to someone else's session. Another user's link, a used one or an expired one is a 404.
- The link carries a secret; only its sha256 is stored. It works once (a conditional
  UPDATE claims it) and for `CHANGE_TTL_S`; asking again replaces an earlier link.
- Once changed: the old address is told (with the new one masked), every other session
  ends, the audit log has the change, and the used row keeps the old address so that an
  erasure also finds what was done under it (hub.services.erasure).
"""
from __future__ import annotations

import datetime as dt

from tortoise.exceptions import IntegrityError

from hub import callers
from hub.errors import Conflict, InvalidInput, NotFound
from hub.models import EmailChange, Session, User
from hub.runtime import Runtime
from hub.security import digest, new_secret
from hub.services import outbox
from hub.services.accounts import Attempt, now

CHANGE_TTL_S = 3600
CHANGE_PATH = "/account/email/"
MAX_EMAIL = 254  # RFC 5321's limit on a path
FORBIDDEN = set(" \t\r\n,;:<>()[]\\\"'")


def check_address(email: str) -> str:
    """The address, normalised. Raises InvalidInput with what is wrong with it."""
    email = email.strip().lower()
    if len(email) > MAX_EMAIL:
        raise InvalidInput(f"an email address has at most {MAX_EMAIL} characters")
    local, at, domain = email.rpartition("@")
    if not at or not local or "." not in domain.strip(".") or domain.startswith(".") or domain.endswith("."):
        raise InvalidInput("not an email address (name@example.com)")
    if any(c in FORBIDDEN or ord(c) < 32 for c in email) or "@" in local or ".." in domain:
        raise InvalidInput("an email address may not hold spaces, control characters or ,;:<>()[]\\\"'")
    return email


def mask(email: str) -> str:
    """For the notice to the old address: enough to recognise, not to harvest."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}…@{domain}"


def link(rt: Runtime, secret: str) -> str:
    return rt.config.public_url.rstrip("/") + CHANGE_PATH + secret


async def request_change(rt: Runtime, user: User, new_email: str, actor: str, address: str) -> str:
    """Queue the confirmation link to `new_email`; returns the normalised address. The
    caller has checked the fresh proof. Raises InvalidInput, Conflict, TooManyRequests."""
    new_email = check_address(new_email)
    if new_email == user.email:
        raise InvalidInput("that is already your email")
    limit = rt.config.login_max_failures
    await Attempt(rt, [(f"email-change:{user.id}", limit), (f"email-change:{callers.throttle_key(address)}",
                                                            limit * 4)]).begin()
    if await User.exists(email=new_email):
        raise Conflict("another account has this email")
    await EmailChange.filter(user_id=user.id, used_at__isnull=True).delete()
    secret = new_secret()
    await EmailChange.create(user=user, new_email=new_email, token_hash=digest(secret),
                             expires_at=now() + dt.timedelta(seconds=CHANGE_TTL_S))
    await outbox.email_person(new_email, "[Bulwark] Confirm your new email", (
        f"Someone (you, we hope) asked to make {new_email} the email of the Bulwark account {user.email}.\n\n"
        f"Confirm it here within {CHANGE_TTL_S // 60} minutes, signed in as {user.email}; the link works once:\n"
        f"{link(rt, secret)}\n\nIf it was not you, ignore this email: nothing changes.\n"))
    await rt.audit.append(actor=actor, action="auth.email.request", target=f"user:{user.id}", address=address)
    return new_email


async def pending(user: User, secret: str) -> EmailChange:
    """The unused, unexpired change of `user` that this secret opens. Raises NotFound
    (also for a change asked by another user: a link is only its asker's)."""
    if not secret or len(secret) > 200:
        raise NotFound("email change link")
    change = await EmailChange.get_or_none(token_hash=digest(secret), used_at__isnull=True)
    if change is None or change.user_id != user.id or change.expires_at <= now():
        raise NotFound("email change link")
    return change


async def confirm(rt: Runtime, user: User, secret: str, keep_session_hash: str, address: str) -> str:
    """Make the change, once. Returns the new email. Raises NotFound, Conflict."""
    from hub.services import alerts

    change = await pending(user, secret)
    old = user.email
    if not await EmailChange.filter(id=change.id, used_at__isnull=True).update(used_at=now(), old_email=old):
        raise NotFound("email change link")
    if await User.exists(email=change.new_email):  # taken since it was asked for
        raise Conflict("another account has this email now")
    user.email = change.new_email
    try:
        await user.save(update_fields=["email"])
    except IntegrityError:
        raise Conflict("another account has this email now") from None
    ended = await Session.filter(user_id=user.id).exclude(id_hash=keep_session_hash).delete()
    await outbox.email_person(old, "[Bulwark] The email of your account was changed", (
        f"The email of your Bulwark account was changed from {old} to {mask(change.new_email)}.\n"
        "Sign-in and messages use the new address from now on.\n\n"
        "If it was not you, answer this email or contact the hub's operator at once.\n"))
    await rt.audit.append(actor=f"user:{change.new_email}", action="auth.email.change", target=f"user:{user.id}",
                          address=address, details={"ended": ended})
    await alerts.account_event(rt, user.id, f"the email of an account was changed to {change.new_email}",
                               "auth.email")
    return change.new_email

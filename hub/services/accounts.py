"""Users: passwords, login throttling, browser sessions, TOTP and recovery codes.

Login is two steps when 2FA is on: the password opens a session with `mfa_ok=False`
(useless for anything but the second step); a valid TOTP or recovery code replaces it
with a fresh session id with `mfa_ok=True`. Every login mints a new session id.
"""
from __future__ import annotations

import datetime as dt
import secrets
import time
import uuid

import pyotp
from tortoise.expressions import Q

from hub import callers
from hub.errors import Conflict, Forbidden, InvalidInput, TooManyRequests, Unauthenticated
from hub.models import LoginFailure, RecoveryCode, Session, User
from hub.runtime import Runtime
from hub.security import digest, new_secret

TOTP_STEP_S = 30
RECOVERY_CODES = 10


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if "@" not in email or len(email) > 320 or email.startswith("@") or email.endswith("@"):
        raise InvalidInput("not an email address")
    return email


def check_password_strength(password: str) -> None:
    if len(password) < 12:
        raise InvalidInput("a password needs at least 12 characters")
    if len(password) > 1024:
        raise InvalidInput("a password may have at most 1024 characters")


async def create_user(rt: Runtime, email: str, password: str, *, platform_admin: bool = False) -> User:
    email = normalise_email(email)
    check_password_strength(password)
    if await User.exists(email=email):
        raise Conflict("a user with this email exists")
    return await User.create(
        email=email, password_hash=await rt.passwords.hash(password), is_platform_admin=platform_admin
    )


class Attempt:
    """One sign-in attempt, recorded as a failure under each of its keys *before* the
    count, so the check and the record are one step: of any burst of parallel guesses
    at most `limit` are ever judged (the k-th row written sees at least k rows). A
    refused attempt's rows are taken back, so hammering a locked key does not extend its
    lock: each lock ends at most `login_window_s` after the failures that caused it."""

    def __init__(self, rt: Runtime, keys: list[tuple[str, int]]) -> None:
        self.rt, self.keys = rt, keys
        self.rows: list[LoginFailure] = []

    async def begin(self) -> None:
        """Raises TooManyRequests (Retry-After: when the oldest counted failure expires)."""
        window = self.rt.config.login_window_s
        since = now() - dt.timedelta(seconds=window)
        self.rows = [await LoginFailure.create(key=key) for key, _ in self.keys]
        for key, limit in self.keys:
            recent = LoginFailure.filter(key=key, at__gte=since)
            if await recent.count() > limit:
                await self.forget()
                oldest = await recent.order_by("at").first()
                wait = window - (now() - oldest.at).total_seconds() if oldest else window
                raise TooManyRequests("too many failed sign-ins; try again later",
                                      retry_after_s=max(1, min(window, int(wait) + 1)))

    async def forget(self) -> None:
        """The attempt succeeded (or was refused): it is no failure."""
        await LoginFailure.filter(id__in=[row.id for row in self.rows]).delete()
        self.rows = []


def login_keys(rt: Runtime, email: str, address: str) -> list[tuple[str, int]]:
    """An account from one address (the stated limit), one address over all accounts, and
    an account from everywhere (a higher bound on guessing spread over many addresses)."""
    where = callers.throttle_key(address)
    limit = rt.config.login_max_failures
    return [(f"account:{email}@{where}", limit), (f"address:{where}", limit * 4), (f"account:{email}", limit * 20)]


async def authenticate(rt: Runtime, email: str, password: str, address: str) -> User:
    """The user whose password this is. Raises TooManyRequests, Unauthenticated."""
    email = email.strip().lower()
    keys = login_keys(rt, email, address)
    attempt = Attempt(rt, keys)
    await attempt.begin()
    user = await User.get_or_none(email=email, closed_at__isnull=True)  # a closed account signs in no more
    if not await rt.passwords.verify(user.password_hash if user else None, password):
        raise Unauthenticated("wrong email or password")  # the attempt's rows stay: failures
    assert user is not None
    await attempt.forget()
    if rt.passwords.needs_rehash(user.password_hash):
        user.password_hash = await rt.passwords.hash(password)
        await user.save(update_fields=["password_hash"])
    await LoginFailure.filter(key=keys[0][0]).delete()
    return user


async def open_session(rt: Runtime, user: User, address: str, *, mfa_ok: bool,
                       user_agent: str = "") -> tuple[str, Session]:
    """A new session; returns the id for the cookie (only its digest is stored)."""
    session_id = new_secret()
    session = await Session.create(
        id_hash=digest(session_id), user=user, mfa_ok=mfa_ok, csrf_token=secrets.token_urlsafe(32),
        address=address[:64], user_agent=user_agent[:200],
        expires_at=now() + dt.timedelta(seconds=rt.config.session_max_age_s),
    )
    return session_id, session


async def load_session(session_id: str) -> Session | None:
    session = await Session.get_or_none(id_hash=digest(session_id)).prefetch_related("user")
    if session is None or session.expires_at <= now() or session.user.closed_at is not None:
        return None
    return session


async def close_session(session_id: str) -> None:
    await Session.filter(id_hash=digest(session_id)).delete()


# Changing a password or a factor needs a fresh proof: a session opened by the password
# (and the current code, with 2FA on) at most this long ago. `/auth/reauth` gives one
# without signing out. A stolen older cookie cannot replace the factors it would need.
FRESH_PROOF_S = 5 * 60


def require_fresh(session: Session) -> None:
    """Raises Forbidden unless the session was opened by a full sign-in within FRESH_PROOF_S."""
    age = (now() - session.created_at).total_seconds()
    if not session.mfa_ok or age > FRESH_PROOF_S:
        raise Forbidden("confirm it is you first: POST /auth/reauth with your password (and current code)")


async def end_other_sessions(user: User, keep_session_id: str) -> int:
    """After a change of password or factor: every other browser signs in again."""
    return await Session.filter(user_id=user.id).exclude(id_hash=digest(keep_session_id)).delete()


# A session is named outside the cookie by the start of its digest: enough to pick one
# of a person's sessions, useless for taking it over (the cookie is the digest's preimage).
SESSION_HANDLE = 16


def session_handle(session: Session) -> str:
    return session.id_hash[:SESSION_HANDLE]


async def sessions_of(user: User) -> list[Session]:
    """The user's signed-in sessions, newest first (pending second-factor steps are not)."""
    return await Session.filter(user_id=user.id, mfa_ok=True, expires_at__gt=now()).order_by("-created_at")


async def end_session(user: User, handle: str) -> bool:
    """Sign one of the user's own sessions out. Another user's handle matches nothing."""
    if len(handle) != SESSION_HANDLE or any(c not in "0123456789abcdef" for c in handle):
        return False
    return bool(await Session.filter(user_id=user.id, id_hash__startswith=handle).delete())


async def end_all_sessions(user: User) -> int:
    """Sign out everywhere, the caller's own session included."""
    return await Session.filter(user_id=user.id).delete()


async def change_password(rt: Runtime, user: User, new_password: str) -> None:
    check_password_strength(new_password)
    user.password_hash = await rt.passwords.hash(new_password)
    await user.save(update_fields=["password_hash"])


# --- TOTP -------------------------------------------------------------------------------

# TOTP secrets are stored sealed (hub.services.sealing): opened here, only when a code is checked.
PENDING_COLUMN, SECRET_COLUMN = "user.totp_pending_secret", "user.totp_secret"


async def begin_totp(rt: Runtime, user: User) -> str:
    """A new secret, pending until a code from it is confirmed; returns the otpauth URI."""
    secret = pyotp.random_base32()
    user.totp_pending_secret = rt.sealer.seal(PENDING_COLUMN, secret)
    await user.save(update_fields=["totp_pending_secret"])
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name="Bulwark")


def _matching_step(secret: str, code: str, at: float) -> int | None:
    totp = pyotp.TOTP(secret)
    step = int(at) // TOTP_STEP_S
    for s in (step - 1, step, step + 1):  # one step of clock skew either way
        if secrets.compare_digest(totp.at(s * TOTP_STEP_S), code):
            return s
    return None


async def _consume_totp(user: User, secret: str, code: str) -> bool:
    """Accept `code` at most once per time step (atomically, against concurrent use)."""
    step = _matching_step(secret, code.strip(), time.time())
    if step is None:
        return False
    updated = await User.filter(
        Q(id=user.id) & (Q(totp_last_step__isnull=True) | Q(totp_last_step__lt=step))
    ).update(totp_last_step=step)
    if updated:
        user.totp_last_step = step
    return bool(updated)


async def confirm_totp(rt: Runtime, user: User, code: str) -> list[str]:
    """Turn 2FA on once a code from the pending secret checks out; returns recovery codes."""
    if not user.totp_pending_secret:
        raise Conflict("start 2FA set-up first")
    secret = rt.sealer.open(PENDING_COLUMN, user.totp_pending_secret)
    assert secret is not None
    step = _matching_step(secret, code.strip(), time.time())
    if step is None:
        raise InvalidInput("wrong code")
    # A code of the new secret replays nothing the old one signed in with, so the step the
    # old one last used does not count (moving to a new device right after signing in works);
    # claiming the pending secret is the guard against a second, concurrent confirmation.
    sealed = rt.sealer.seal(SECRET_COLUMN, secret)
    if not await User.filter(id=user.id, totp_pending_secret=user.totp_pending_secret).update(
            totp_secret=sealed, totp_pending_secret=None, totp_last_step=step):
        raise Conflict("start 2FA set-up first")
    user.totp_secret, user.totp_pending_secret, user.totp_last_step = sealed, None, step
    return await new_recovery_codes(user)


async def enrol_totp(rt: Runtime, user: User, secret: str | None = None) -> tuple[str, list[str]]:
    """Turn 2FA on without the confirming code, for an operator at the hub's console
    (`bulwark hub create-admin --totp`) who is shown the secret there. Returns the otpauth
    URI and fresh recovery codes."""
    secret = secret or pyotp.random_base32()
    user.totp_secret, user.totp_pending_secret = rt.sealer.seal(SECRET_COLUMN, secret), None
    await user.save(update_fields=["totp_secret", "totp_pending_secret"])
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name="Bulwark")
    return uri, await new_recovery_codes(user)


async def disable_totp(user: User) -> None:
    user.totp_secret = user.totp_pending_secret = None
    await user.save(update_fields=["totp_secret", "totp_pending_secret"])
    await RecoveryCode.filter(user_id=user.id).delete()


async def new_recovery_codes(user: User) -> list[str]:
    codes = [secrets.token_hex(5) for _ in range(RECOVERY_CODES)]
    await RecoveryCode.filter(user_id=user.id).delete()
    await RecoveryCode.bulk_create([RecoveryCode(user_id=user.id, code_hash=digest(c)) for c in codes])
    return codes


async def second_factor(rt: Runtime, user: User, code: str, address: str) -> None:
    """Check a TOTP or an unused recovery code. Raises Unauthenticated, TooManyRequests."""
    attempt = Attempt(rt, [(f"mfa:{user.id}", rt.config.login_max_failures)])
    await attempt.begin()
    code = code.strip().replace(" ", "").replace("-", "")
    secret = rt.sealer.open(SECRET_COLUMN, user.totp_secret)
    if secret and await _consume_totp(user, secret, code):
        return await attempt.forget()
    used = await RecoveryCode.filter(
        user_id=user.id, code_hash=digest(code.lower()), used_at__isnull=True
    ).update(used_at=now())
    if used:
        return await attempt.forget()
    raise Unauthenticated("wrong code")


async def signed_in(rt: Runtime, user: User, address: str, *, mfa: bool = False) -> None:
    """A completed sign-in (password, and the second factor when the user has one): the
    audit entry, and a security notice when it comes from a place (a /24 or /64) none of
    the user's last 200 sign-ins came from. The one place every sign-in path calls."""
    from hub.models import AuditEntry
    from hub.services import alerts

    actor = f"user:{user.email}"
    earlier = await AuditEntry.filter(actor=actor, action="auth.login").order_by("-seq").limit(200) \
        .values_list("address", flat=True)
    await rt.audit.append(actor=actor, action="auth.login", address=address, details={"mfa": True} if mfa else None)
    place = alerts.place_of(address)
    if earlier and place not in {alerts.place_of(a) for a in earlier}:
        await alerts.account_event(rt, user.id, f"{user.email} signed in from a new place ({place})", "signin")


async def get_user(user_id: uuid.UUID) -> User:
    user = await User.get_or_none(id=user_id)
    if user is None:
        raise Unauthenticated("no such user")
    return user

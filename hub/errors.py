"""The hub's one exception hierarchy, and its one mapping to HTTP (`status`, `to_json`,
`headers`), used by Quart's handlers (`hub.app`) and the agent fast path (`hub.agent_asgi`).

    HubError
    ├── ConfigError              the operator's TOML or environment is wrong (startup)
    ├── ClientError              the caller's fault → 4xx
    │   ├── InvalidInput         400  malformed or semantically wrong input (has `details`)
    │   ├── Unauthenticated      401  no or bad credentials
    │   ├── PaymentRequired      402  the tenant's billing state pauses this (restricted, suspended)
    │   ├── Forbidden            403  authenticated, but the role or token scope is short
    │   │   └── SecondFactorRequired  the account has no 2FA yet: it may only set it up
    │   ├── NotFound             404  absent, or belongs to another tenant (never 403 there)
    │   ├── Conflict             409  clashes with current state (duplicate, used token)
    │   │   └── IllegalTransition     a state machine asked for a step its table lacks
    │   ├── PayloadTooLarge      413
    │   ├── Unprocessable        422  well-formed, but past a work budget (too large to check)
    │   └── TooManyRequests      429  throttled (has `retry_after_s`)
    └── ServerError              the world failed → 5xx
        ├── Unavailable          503  database or dependency down
        └── SecretUnreadable     500  a sealed secret's key is missing, or the value was altered

Services raise these and know nothing of HTTP; handlers never catch them.
"""
from __future__ import annotations

from typing import Any


class HubError(Exception):
    status = 500
    code = "internal"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return body

    def headers(self) -> dict[str, str]:
        """Headers the answer carries besides its JSON body (the one mapping that Quart's
        handlers and the agent fast path both use)."""
        return {}


class ConfigError(HubError):
    code = "config"


class ClientError(HubError):
    status = 400
    code = "bad_request"


class InvalidInput(ClientError):
    status = 400
    code = "invalid_input"


class Unauthenticated(ClientError):
    status = 401
    code = "unauthenticated"


class PaymentRequired(ClientError):
    """An unpaid invoice pauses new agents and deployments (hub.services.dunning)."""

    status = 402
    code = "payment_required"


class Forbidden(ClientError):
    status = 403
    code = "forbidden"


class SecondFactorRequired(Forbidden):
    """A signed-in user without TOTP, where every account must have it (hub.web.principal)."""

    code = "second_factor_required"

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "setup": "/auth/2fa/setup", "panel": "/account#totp-h"}


class NotFound(ClientError):
    status = 404
    code = "not_found"

    def __init__(self, what: str = "object") -> None:
        super().__init__(f"{what} not found")


class Conflict(ClientError):
    status = 409
    code = "conflict"


class IllegalTransition(Conflict):
    """A state machine (`hub.rollout`) was asked for a step its table does not have."""

    code = "illegal_transition"


class PayloadTooLarge(ClientError):
    status = 413
    code = "payload_too_large"


class Unprocessable(ClientError):
    status = 422
    code = "unprocessable"


class TooManyRequests(ClientError):
    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class ServerError(HubError):
    status = 500
    code = "internal"


class Unavailable(ServerError):
    status = 503
    code = "unavailable"


class SecretUnreadable(ServerError):
    """A sealed value (hub.services.sealing) names a key the keyring lacks, or fails its
    authentication tag: the keyring file is not the one the database was sealed with."""

    code = "secret_unreadable"

"""The assistant's per-tenant caps, kept in the database so every hub process shares them.

Invariants:
- One `assistant_usage` row per (tenant, kind, window): requests per clock hour, tokens
  per UTC day (`WINDOWS`). A window's row is made on first use (an insert that ignores a
  conflict, so two processes making it at once are fine).
- `used` grows only by `take`: one UPDATE … WHERE used + cost <= cap. The database applies
  it atomically (SQLite runs one writer at a time; PostgreSQL re-checks the WHERE on the
  row it locked), so requests that together would pass the cap get exactly the cap.
- Tokens are reserved before each call of the model (an estimate that bounds its input and
  output) and settled to the API's `usage` afterwards (`settle`, which may only lower or
  raise by the difference): the spend cap holds against the estimates.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from tortoise.expressions import F

from hub.config import HubConfig
from hub.errors import TooManyRequests
from hub.models import AssistantUsage

WINDOWS = {"requests": 3600, "tokens": 86400}
WORDS = {"requests": "requests per hour", "tokens": "tokens per day"}


def caps(config: HubConfig) -> dict[str, int]:
    return {"requests": config.assistant_requests_per_hour, "tokens": config.assistant_tokens_per_day}


@dataclass(frozen=True)
class Taken:
    """What `take` granted: settle it against the same window, whenever that is."""
    tenant_id: uuid.UUID
    kind: str
    window_start: int
    cost: int


def window_of(kind: str, now: float) -> int:
    length = WINDOWS[kind]
    return int(now) - int(now) % length


async def take(config: HubConfig, tenant_id: uuid.UUID, kind: str, cost: int, *,
               now: float | None = None) -> Taken:
    """Add `cost` to this window's use if it stays within the cap. Raises TooManyRequests
    (with the seconds until the window ends) when it would not."""
    now = time.time() if now is None else now
    start = window_of(kind, now)
    cap = caps(config)[kind]
    fits = AssistantUsage.filter(tenant_id=tenant_id, kind=kind, window_start=start, used__lte=cap - cost)
    granted = cost <= cap and await fits.update(used=F("used") + cost)
    if not granted and cost <= cap:  # the window's first use: make its row, then try again
        await _make_row(tenant_id, kind, start)
        granted = await fits.update(used=F("used") + cost)
    if not granted:
        raise TooManyRequests(f"this tenant's assistant {WORDS[kind]} are used up",
                              retry_after_s=max(1, start + WINDOWS[kind] - int(now)))
    return Taken(tenant_id, kind, start, cost)


async def _make_row(tenant_id: uuid.UUID, kind: str, start: int) -> None:
    """The window's row, unless another request (or process) made it first."""
    conn = AssistantUsage._meta.db
    pg = conn.capabilities.dialect == "postgres"
    ph = ("$1", "$2", "$3") if pg else ("?", "?", "?")
    await conn.execute_query(
        f"INSERT INTO assistant_usage (tenant_id, kind, window_start, used) VALUES ({', '.join(ph)}, 0) "
        "ON CONFLICT (tenant_id, kind, window_start) DO NOTHING", [tenant_id if pg else str(tenant_id), kind, start])


async def settle(taken: Taken, actual: int) -> None:
    """Replace a reservation by what was really used."""
    if actual != taken.cost:
        await AssistantUsage.filter(tenant_id=taken.tenant_id, kind=taken.kind,
                                    window_start=taken.window_start).update(used=F("used") + (actual - taken.cost))


async def usage(config: HubConfig, tenant_id: uuid.UUID, *, now: float | None = None) -> dict[str, Any]:
    """This tenant's use in the current windows, the caps, and when the windows end."""
    now = time.time() if now is None else now
    used = {}
    for kind in WINDOWS:
        row = await AssistantUsage.filter(tenant_id=tenant_id, kind=kind,
                                          window_start=window_of(kind, now)).first().values("used")
        used[kind] = max(0, row["used"]) if row else 0
    return {"enabled": bool(config.anthropic_api_key), "model": config.anthropic_model,
            "requests_last_hour": used["requests"], "requests_per_hour": config.assistant_requests_per_hour,
            "tokens_last_day": used["tokens"], "tokens_per_day": config.assistant_tokens_per_day,
            "hour_resets_at": window_of("requests", now) + WINDOWS["requests"],
            "day_resets_at": window_of("tokens", now) + WINDOWS["tokens"]}

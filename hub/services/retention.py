"""Retention per kind of data: each kind is kept as long as its setting says, then deleted.

Invariants:
- `KINDS` is the one table: a kind, the setting that bounds it, and what it deletes. The
  settings' defaults and the checks that keep the policy's promises are in hub.config
  (sampled addresses expire no later than the raw metrics).
- Every sweep is a delete of rows older than its bound, relative to `now`: idempotent, and
  tests move the clock by passing `now`.
- Pending outbox messages are never swept (they are still to be sent), nor a billing
  record before its `keep_until`.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from hub.clock import now_utc
from hub.models import (
    AssistantUsage,
    BillingRecord,
    LoginFailure,
    MetricPoint,
    MetricRollup,
    OutboxMessage,
    Session,
    TopSource,
    TrafficAggregate,
)
from hub.services.background import job

if TYPE_CHECKING:
    from hub.runtime import Runtime


@dataclasses.dataclass(frozen=True)
class Kind:
    name: str
    setting: str  # the HubConfig field with its retention in seconds
    about: str
    sweep: Callable[[dt.datetime], Awaitable[int]]  # rows older than this go; the number gone


def _unix(t: dt.datetime) -> int:
    return int(t.timestamp())


KINDS: tuple[Kind, ...] = (
    Kind("sample_addresses", "retention_sample_addresses_s",
         "dropped-packet samples: the source addresses agents saw dropped",
         lambda before: TopSource.filter(ts__lt=_unix(before)).delete()),
    # aggregates of the same samples, without addresses: kept as long as the raw counters
    Kind("sample_aggregates", "metrics_raw_retention_s",
         "dropped-packet aggregates: protocols, destination ports and sizes (no addresses)",
         lambda before: TrafficAggregate.filter(ts__lt=_unix(before)).delete()),
    Kind("raw_metrics", "metrics_raw_retention_s", "per-rule counters as agents sent them",
         lambda before: MetricPoint.filter(ts__lt=_unix(before)).delete()),
    Kind("rollups", "metrics_rollup_retention_s", "per-rule counters summed per minute",
         lambda before: MetricRollup.filter(bucket__lt=_unix(before)).delete()),
    Kind("sessions", "retention_expired_sessions_s", "browser sessions (with the address they signed in from), "
         "counted from their expiry", lambda before: Session.filter(expires_at__lt=before).delete()),
    Kind("login_failures", "retention_login_failures_s", "failed sign-ins (account and address), for throttling",
         lambda before: LoginFailure.filter(at__lt=before).delete()),
    Kind("assistant_usage", "retention_assistant_usage_s", "the assistant's use per tenant and window (counts only)",
         lambda before: AssistantUsage.filter(window_start__lt=_unix(before)).delete()),
    Kind("outbox", "retention_outbox_s", "sent and given-up messages (their addresses and contents)",
         lambda before: OutboxMessage.filter(state__in=("sent", "dead"), created_at__lt=before).delete()),
)


async def enforce(rt: Runtime, *, now: dt.datetime | None = None,
                  only: tuple[str, ...] | None = None) -> dict[str, int]:
    """Delete what is past its retention; the rows deleted per kind."""
    now = now or now_utc()
    gone = {}
    for kind in KINDS:
        if only is None or kind.name in only:
            gone[kind.name] = await kind.sweep(now - dt.timedelta(seconds=getattr(rt.config, kind.setting)))
    if only is None or "billing_records" in only:
        gone["billing_records"] = await BillingRecord.filter(keep_until__lt=now).delete()
    return gone


def table(rt: Runtime) -> list[dict[str, object]]:
    """The retention of each kind, as the privacy page and docs show it."""
    rows: list[dict[str, object]] = [
        {"kind": k.name, "about": k.about, "setting": k.setting, "seconds": getattr(rt.config, k.setting)}
        for k in KINDS]
    rows.append({"kind": "billing_records", "about": "a closed tenant's minimised billing record (the law)",
                 "setting": "retention_billing_records_s", "seconds": rt.config.retention_billing_records_s})
    return rows


@job("retention", every_s="retention_interval_s")
async def _retention_job(rt: Runtime) -> None:
    await enforce(rt)

"""Selecting a tenant's audit entries by action, actor and time (the API and the panel).

Times without a zone are UTC. The action filter is exact, or a prefix when it ends in a
dot (`policy.` is every policy action), so it can be answered from the column's values
without a pattern the database would have to escape.
"""
from __future__ import annotations

import dataclasses
import datetime as dt

from tortoise.queryset import QuerySet

from hub.errors import InvalidInput
from hub.models import AuditEntry
from hub.services.scope import TenantScope


@dataclasses.dataclass(frozen=True, slots=True)
class Filters:
    action: str | None = None
    actor: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    before_seq: int | None = None

    @property
    def active(self) -> bool:
        return any(v for k, v in dataclasses.asdict(self).items() if k != "before_seq")


def _utc(when: dt.datetime | None) -> dt.datetime | None:
    if when is None or when.tzinfo is not None:
        return when
    return when.replace(tzinfo=dt.timezone.utc)


def select(scope: TenantScope, f: Filters) -> QuerySet[AuditEntry]:
    """The tenant's entries matching `f`, newest first. Raises InvalidInput for a time
    range that ends before it starts."""
    since, until = _utc(f.since), _utc(f.until)
    if since and until and until <= since:
        raise InvalidInput("the time range ends before it starts")
    qs = scope.query(AuditEntry)
    if f.before_seq is not None:
        qs = qs.filter(seq__lt=f.before_seq)
    if f.action:
        qs = qs.filter(action__startswith=f.action) if f.action.endswith(".") else qs.filter(action=f.action)
    if f.actor:
        qs = qs.filter(actor=f.actor)
    if since:
        qs = qs.filter(at__gte=since)
    if until:
        qs = qs.filter(at__lt=until)
    return qs.order_by("-seq")


async def actions(scope: TenantScope) -> list[str]:
    """The actions this tenant's log holds (for the panel's filter menu)."""
    return sorted(set(await scope.query(AuditEntry).distinct().values_list("action", flat=True)))

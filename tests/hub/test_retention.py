"""Retention per kind of data (hub.services.retention) on a moved clock, and the settings
that keep the policy's promises (hub.config)."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest

from hub.config import load_config
from hub.errors import ConfigError
from hub.models import LoginFailure, MetricPoint, MetricRollup, OutboxMessage, Session, TopSource
from hub.services import retention
from tests.hub.harness import HubHarness

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)
H = dt.timedelta(hours=1)


async def _one_of_each(t, at: dt.datetime) -> None:
    ts = int(at.timestamp())
    a = uuid.uuid4()
    await MetricPoint.create(tenant_id=t.id, agent_id=a, rule="r", ts=ts, packets=1)
    await MetricRollup.create(tenant_id=t.id, agent_id=a, rule="r", bucket=ts, resolution_s=60, packets=1)
    await TopSource.create(tenant_id=t.id, agent_id=a, ts=ts, source="198.51.100.7", packets=1)
    await LoginFailure.create(key=f"address:{uuid.uuid4()}")
    await LoginFailure.filter(at__gt=at).update(at=at)
    for state in ("pending", "sent", "dead"):
        await OutboxMessage.create(tenant_id=t.id, kind="email", target="x@example.com", state=state,
                                   next_attempt_at=at, created_at=at)


async def _counts(t) -> dict[str, int]:
    return {"sample_addresses": await TopSource.all().count(), "raw_metrics": await MetricPoint.all().count(),
            "rollups": await MetricRollup.all().count(), "login_failures": await LoginFailure.all().count(),
            "outbox": await OutboxMessage.all().count(), "sessions": await Session.all().count()}


async def test_each_kind_goes_when_its_time_is_up_and_addresses_first(tmp_path):
    async with HubHarness(tmp_path) as hub:
        t = await hub.tenant()
        await LoginFailure.all().delete()
        await _one_of_each(t, NOW)
        await Session.all().update(expires_at=NOW + 12 * H)
        start = await _counts(t)

        # 1 h later: only the sampled addresses are gone.
        gone = await retention.enforce(hub.rt, now=NOW + H + dt.timedelta(seconds=1))
        assert gone["sample_addresses"] == 1
        assert sum(v for k, v in gone.items() if k != "sample_addresses") == 0
        # 6 h: the raw metrics too. A day: failed sign-ins. 12 h past expiry: the sessions.
        assert (await retention.enforce(hub.rt, now=NOW + 6 * H + dt.timedelta(seconds=1)))["raw_metrics"] == 1
        later = await retention.enforce(hub.rt, now=NOW + 25 * H)
        assert later["login_failures"] == 1 and later["sessions"] == start["sessions"] > 0
        # 30 days: rollups, and sent and dead messages; a pending one stays.
        gone = await retention.enforce(hub.rt, now=NOW + dt.timedelta(days=30, seconds=1))
        assert gone["rollups"] == 1 and gone["outbox"] == 2
        assert await OutboxMessage.filter(state="pending").count() == 1
        # Again: nothing more (idempotent).
        assert sum((await retention.enforce(hub.rt, now=NOW + dt.timedelta(days=31))).values()) == 0


async def test_settings_move_the_bounds(tmp_path):
    async with HubHarness(tmp_path, retention_sample_addresses_s=60, retention_outbox_s=3600) as hub:
        t = await hub.tenant()
        await _one_of_each(t, NOW)
        gone = await retention.enforce(hub.rt, now=NOW + dt.timedelta(seconds=61))
        assert gone["sample_addresses"] == 1 and gone["outbox"] == 0
        assert (await retention.enforce(hub.rt, now=NOW + 2 * H))["outbox"] == 2
        r = await t.owner.get("/api/v1/privacy/retention")
        assert r.status_code == 200
        rows = {row["kind"]: row["seconds"] for row in (await r.get_json())["retention"]}
        assert rows["sample_addresses"] == 60 and rows["billing_records"] == 3653 * 86400
        assert (await hub.client().get("/api/v1/privacy/retention")).status_code == 401


@pytest.mark.parametrize(("settings", "why"), [
    ({"retention_sample_addresses_s": 7 * 3600}, "expire first"),
    ({"retention_login_failures_s": 60}, "login_window_s"),
    ({"erasure_delay_s": 29 * 86400, "erasure_interval_s": 2 * 86400}, "30 days"),
    ({"retention_outbox_s": 0}, "at least 1"),
    ({"erasure_delay_s": -1}, "negative"),
])
def test_settings_that_would_break_a_promise_are_refused(settings, why):
    with pytest.raises(ConfigError, match=why):
        load_config(env={}, **settings)

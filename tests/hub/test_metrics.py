from __future__ import annotations

import asyncio
import time

from hub.services import metrics
from tests.hub.harness import enroll


async def test_ingest_query_and_rollups(hub):
    t = await hub.tenant()
    a = await enroll(t)
    now = int(time.time())
    base = now - now % 60 - 120
    points = [{"ts": base + i, "rule": "ssh", "packets": 10, "bytes": 600} for i in range(90)]
    points.append({"ts": base, "rule": "web", "packets": 5, "bytes": 100})
    r = await a.post("/agent/v1/metrics", json={"points": points, "top_sources": [
        {"ts": base, "source": "203.0.113.9", "packets": 70}, {"ts": base, "source": "198.51.100.1", "packets": 3}]})
    assert (await r.get_json()) == {"accepted": 93}
    raw = (await (await t.token.get(f"{t.base}/metrics?rule=ssh&agent_id={a.id}")).get_json())["points"]
    assert len(raw) == 90
    await metrics.rollup(hub.rt, now=base + 120)
    r = await t.token.get(f"{t.base}/metrics?resolution=rollup&rule=ssh&start={base - 60}")
    rolled = (await r.get_json())["points"]
    assert [(p["ts"], p["packets"]) for p in rolled] == [(base, 600), (base + 60, 300)]
    await metrics.rollup(hub.rt, now=base + 120)  # idempotent
    r = await t.token.get(f"{t.base}/metrics?resolution=rollup&rule=ssh&start={base - 60}")
    assert (await r.get_json())["points"] == rolled
    top = (await (await t.token.get(f"{t.base}/metrics/top-sources")).get_json())["sources"]
    assert top[0] == {"source": "203.0.113.9", "packets": 70}


async def test_a_rollup_sum_beyond_the_columns_is_held_at_the_largest_value(hub):
    from hub.api_schemas.common import MAX_INT

    t = await hub.tenant()
    a = await enroll(t)
    now = int(time.time())
    base = now - now % 60 - 120
    points = [{"ts": base + i, "rule": "ssh", "packets": MAX_INT, "bytes": MAX_INT} for i in range(3)]
    assert (await (await a.post("/agent/v1/metrics", json={"points": points})).get_json()) == {"accepted": 3}
    await metrics.rollup(hub.rt, now=base + 120)  # summed by the database: TOTAL / numeric, then clamped
    r = await t.token.get(f"{t.base}/metrics?resolution=rollup&rule=ssh&start={base - 60}")
    assert [(p["packets"], p["bytes"]) for p in (await r.get_json())["points"]] == [(MAX_INT, MAX_INT)]


async def test_batches_are_limited_and_time_checked(hub):
    t = await hub.tenant()
    a = await enroll(t)
    r = await a.post("/agent/v1/metrics", json={"points": [{"ts": 1, "rule": "x", "packets": 1, "bytes": 1}]})
    assert r.status_code == 400
    n = hub.config.max_metrics_points + 1
    r = await a.post("/agent/v1/metrics", json={"points": [
        {"ts": int(time.time()), "rule": "x", "packets": 1, "bytes": 1}] * n})
    assert r.status_code in (400, 413)


async def test_sse_streams_live_rates(hub):
    t = await hub.tenant()
    a = await enroll(t)
    client = t.token.client
    headers = {"Authorization": f"Bearer {t.token.token}"}
    async with client.request(f"{t.base}/metrics/stream?max_s=5", headers=headers) as conn:
        await conn.send_complete()
        chunks = []

        async def read():
            while b"event: rates" not in b"".join(chunks):
                chunks.append(await conn.receive())

        reader = asyncio.create_task(read())
        await asyncio.sleep(0.2)
        await a.post("/agent/v1/metrics", json={"points": [
            {"ts": int(time.time()), "rule": "ssh", "packets": 50, "bytes": 3000, "interval_s": 5}]})
        await asyncio.wait_for(reader, 5)
        await conn.disconnect()
    body = b"".join(chunks).decode()
    assert '"rule": "ssh"' in body and '"pps": 10.0' in body


async def test_concurrent_batches_share_transactions_and_all_are_stored(hub):
    t = await hub.tenant()
    agents = [await enroll(t, hostname=f"web{i}") for i in range(12)]
    writer = hub.app.extensions["bulwark_metrics"]
    loads = writer.writes.loads
    now = int(time.time())
    results = await asyncio.gather(*[
        a.post("/agent/v1/metrics", json={
            "points": [{"ts": now, "rule": f"r{j}", "packets": 1, "bytes": 60} for j in range(5)],
            "top_sources": [{"ts": now, "source": "203.0.113.9", "packets": 1}]})
        for a in agents])
    assert [(await r.get_json()) for r in results] == [{"accepted": 6}] * 12
    assert writer.writes.loads - loads < 12  # grouped: fewer transactions than batches
    raw = (await (await t.token.get(f"{t.base}/metrics?start={now - 10}")).get_json())["points"]
    assert len(raw) == 12 * 5 and len({p["agent_id"] for p in raw}) == 12
    top = (await (await t.token.get(f"{t.base}/metrics/top-sources")).get_json())["sources"]
    assert top == [{"source": "203.0.113.9", "packets": 12}]


async def test_top_sources_are_bare_hosts_however_sent_and_before_0008(hub):
    """The canonical codec (rules_dsl.addresses) writes a host bare, as the lists do; rows
    stored with a length before migration 0008 are rewritten and add up with the new."""
    import importlib

    from tortoise import Tortoise

    from hub.models import Agent, TopSource

    t = await hub.tenant()
    a = await enroll(t)
    now = int(time.time())
    agent = await Agent.filter(tenant_id=t.id).first()
    await TopSource.create(tenant_id=t.id, agent_id=agent.id, ts=now, source="203.0.113.9/32", packets=5)
    await TopSource.create(tenant_id=t.id, agent_id=agent.id, ts=now, source="2001:db8::1/128", packets=4)
    migration = importlib.import_module("hub.migrations.0008_canonical_top_sources")
    for sql in migration.STATEMENTS:
        await Tortoise.get_connection("default").execute_query(sql)
    r = await a.post("/agent/v1/metrics", json={"top_sources": [
        {"ts": now, "source": "203.0.113.9/32", "packets": 1}, {"ts": now, "source": "2001:db8:0::1", "packets": 1}]})
    assert (await r.get_json()) == {"accepted": 2}
    top = (await (await t.token.get(f"{t.base}/metrics/top-sources")).get_json())["sources"]
    assert top == [{"source": "203.0.113.9", "packets": 6}, {"source": "2001:db8::1", "packets": 5}]
    r = await a.post("/agent/v1/metrics", json={"top_sources": [{"ts": now, "source": "10.0.0.1/8", "packets": 1}]})
    assert r.status_code == 400


async def test_a_group_larger_than_one_statement_stores_every_row(hub, monkeypatch):
    """On SQLite a group is written as multi-row INSERTs split by the parameter limit:
    with a limit of two rows a statement, every row still lands once, in its columns."""
    monkeypatch.setattr(metrics, "SQLITE_MAX_VARIABLES", 2 * len(metrics.POINT_COLUMNS))
    t = await hub.tenant()
    a = await enroll(t)
    now = int(time.time())
    points = [{"ts": now - i, "rule": f"r{i}", "packets": i, "bytes": 10 * i, "interval_s": 1 + i} for i in range(7)]
    r = await a.post("/agent/v1/metrics", json={
        "points": points, "top_sources": [{"ts": now, "source": f"203.0.113.{i}", "packets": i} for i in range(5)]})
    assert (await r.get_json()) == {"accepted": 12}
    raw = (await (await t.token.get(f"{t.base}/metrics?start={now - 60}")).get_json())["points"]
    assert sorted((p["ts"], p["rule"], p["packets"], p["bytes"]) for p in raw) == sorted(
        (p["ts"], p["rule"], p["packets"], p["bytes"]) for p in points)
    top = (await (await t.token.get(f"{t.base}/metrics/top-sources?start={now - 60}")).get_json())["sources"]
    assert sorted(s["packets"] for s in top) == [0, 1, 2, 3, 4]

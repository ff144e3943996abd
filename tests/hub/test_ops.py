"""The hub's own Prometheus metrics: connected agents and pending pushes."""
from __future__ import annotations

import asyncio

from tests.hub.harness import enroll


def _gauge(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} missing from /metrics")


async def _scrape(hub) -> str:
    r = await hub.client().get("/metrics")
    assert r.status_code == 200
    return await r.get_data(as_text=True)


async def test_connected_agents_and_pending_pushes(hub):
    text = await _scrape(hub)
    assert _gauge(text, "bulwark_hub_connected_agents") == 0
    assert _gauge(text, "bulwark_hub_pending_pushes") == 0
    t = await hub.tenant()
    waiting, reporting, silent = await enroll(t), await enroll(t), await enroll(t)
    await waiting.desired()
    await reporting.report(applied_digest=None)
    task = asyncio.create_task(waiting.desired(wait_s=30))
    live = hub.app.extensions["bulwark_agents"]
    while live.pending_pushes < 1:
        await asyncio.sleep(0.01)
    text = await _scrape(hub)
    assert _gauge(text, "bulwark_hub_pending_pushes") == 1
    assert _gauge(text, "bulwark_hub_connected_agents") == 2  # `silent` only enrolled
    # Long past the window, only the agent whose request still waits is connected.
    assert live.connected(at=10**10) == 1
    await t.token.post(f"{t.base}/agents/{waiting.id}/disable")
    assert (await asyncio.wait_for(task, 10))["mode"] == "deactivate"
    text = await _scrape(hub)
    assert _gauge(text, "bulwark_hub_pending_pushes") == 0
    assert _gauge(text, "bulwark_hub_connected_agents") == 2


async def test_last_seen_is_saved_in_bulk_not_per_request(hub):
    from hub.models import Agent

    t = await hub.tenant()
    a = await enroll(t)
    await Agent.filter(id=a.id).update(last_seen_at=None)
    for _ in range(3):
        await a.desired()
    assert (await Agent.get(id=a.id)).last_seen_at is None  # no write on the request path
    live = hub.app.extensions["bulwark_agents"]
    assert await live.save_last_seen() == 1
    assert (await Agent.get(id=a.id)).last_seen_at is not None
    assert await live.save_last_seen() == 0

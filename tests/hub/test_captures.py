"""Agent captures at the hub: asked for through the desired state (the long-poll wakes),
uploaded by the agent, kept per tenant, replayed; hostile uploads are 4xx."""
from __future__ import annotations

import asyncio

from tests.hub.harness import HubHarness, enroll
from tests.hub.test_replay_api import CANDIDATE, _capture, _policy


async def test_ask_long_poll_upload_list_replay(hub):
    t = await hub.tenant()
    agent = await enroll(t)
    await agent.desired()  # holds the etag now
    waiting = asyncio.create_task(agent.desired(wait_s=10))
    await asyncio.sleep(0.2)
    r = await t.token.post(t.base + "/captures", json={"agent_id": agent.id, "max_frames": 100, "max_seconds": 5})
    asked = await r.get_json()
    assert r.status_code == 202, asked
    doc = await waiting
    assert doc["capture"]["id"] == asked["id"] and doc["capture"]["max_frames"] == 100
    r = await agent.post(f"/agent/v1/captures/{asked['id']}", data=_capture())
    assert r.status_code == 200, await r.get_data(as_text=True)
    kept = (await (await t.token.get(t.base + "/captures")).get_json())["captures"]
    assert [c["id"] for c in kept] == [asked["id"]]
    assert (await (await t.token.get(f"{t.base}/captures/{asked['id']}")).get_data()) == _capture()
    assert "capture" not in await agent.desired()  # answered: no longer asked
    cand = await _policy(t, "cand", CANDIDATE)
    r = await t.token.post(f"{t.base}/replay?policy_id={cand}&capture_id={asked['id']}")
    assert (await r.get_json())["frames"] == 3
    other = await hub.tenant("other")
    assert (await other.token.get(f"{other.base}/captures/{asked['id']}")).status_code == 404
    assert (await other.token.post(other.base + "/captures", json={"agent_id": agent.id})).status_code == 404


async def test_hostile_uploads_and_requests(tmp_path):
    async with HubHarness(tmp_path, capture_max_bytes=2000) as hub:
        t = await hub.tenant()
        agent = await enroll(t)
        assert (await agent.post("/agent/v1/captures/nope", data=_capture())).status_code == 409
        asked = await (await t.token.post(t.base + "/captures", json={"agent_id": agent.id})).get_json()
        url = f"/agent/v1/captures/{asked['id']}"
        assert (await agent.post(url, data=b"not a pcap")).status_code == 400
        assert (await agent.post(url, data=b"\xd4\xc3\xb2\xa1" + b"\0" * 5000)).status_code == 413
        assert (await hub.client().post(url, data=_capture())).status_code == 401
        for body in ({"agent_id": agent.id, "max_frames": 0}, {"agent_id": agent.id, "max_seconds": 10**6},
                     {"agent_id": "x"}, {"agent_id": agent.id, "sample_every": "one"}, {"agent_id": agent.id, "max_bytes": 10**20}):
            assert 400 <= (await t.token.post(t.base + "/captures", json=body)).status_code < 500, body

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


async def test_the_agent_reads_the_hubs_request_through_the_protocol_and_bounds_it(hub):
    """What the real hub puts in the desired state is what the agent's parser accepts, and
    the upload path the agent derives from it is the one the hub expects; a hostile hub's
    request is clamped to the agent's MAX_* or refused, never obeyed as sent."""
    import pytest

    from agent.capture import MAX_BYTES, MAX_FRAMES, MAX_SAMPLE_EVERY, MAX_SECONDS, CaptureError, request_of

    t = await hub.tenant()
    agent = await enroll(t)
    asked = await (await t.token.post(t.base + "/captures", json={
        "agent_id": agent.id, "max_frames": 100_000, "max_seconds": 300, "sample_every": 7})).get_json()
    wanted = request_of((await agent.desired())["capture"])
    assert wanted.id == asked["id"] and wanted.limits.max_frames == 100_000 and wanted.limits.sample_every == 7
    r = await agent.post(f"/agent/v1/captures/{wanted.id}", data=_capture())
    assert r.status_code == 200, await r.get_data(as_text=True)

    huge = request_of({"id": asked["id"], "max_frames": 10**12, "max_seconds": 10**9, "max_bytes": 2**62,
                       "sample_every": 10**9})
    assert (huge.limits.max_frames, huge.limits.max_seconds, huge.limits.max_bytes, huge.limits.sample_every) == (
        MAX_FRAMES, MAX_SECONDS, MAX_BYTES, MAX_SAMPLE_EVERY)
    tiny = request_of({"id": asked["id"], "max_frames": -5, "max_seconds": 0, "max_bytes": -1, "sample_every": 0})
    assert tiny.limits.max_frames == 1 and tiny.limits.max_seconds > 0 and tiny.limits.sample_every == 1
    for hostile in ({"id": "../status"}, {"id": ["x"]}, {"id": None}, "capture", [asked["id"]],
                    {"id": asked["id"], "max_frames": "1e9"}, {"id": asked["id"], "max_seconds": 1.5e300},
                    {"id": asked["id"], "max_bytes": True}, {"id": "a" * 10_000}):
        with pytest.raises(CaptureError):
            request_of(hostile)

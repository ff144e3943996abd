"""The streamed desired state (`"stream": true`, docs/agent-protocol.md "Streaming"): one
answer held open, a document a line each time the agent's state changes. It must say
what the long-poll would have said, change after change, on one request: the deltas
follow from the last document sent, a newer request ends it, a revoked agent gets the
error as its last line, and the agent hanging up ends its wait."""
from __future__ import annotations

import asyncio
from pathlib import Path

from hub.services import agents as agent_service
from tests.hub.harness import enroll, unpacked


WEB = (Path(__file__).parents[2] / "examples" / "web.bw").read_text()


async def _deny_list(t, name: str = "bad") -> str:
    r = await t.token.post(t.base + "/lists", json={"name": name, "kind": "deny"})
    assert r.status_code == 201
    return f"{t.base}/lists/{(await r.get_json())['id']}"


async def _holding_agent(hub):
    """A tenant and an agent that holds the current state (its next ask waits)."""
    t = await hub.tenant()
    a = await enroll(t)
    await a.desired()
    return t, a


async def test_each_change_is_a_line_of_the_same_answer_with_the_delta_from_the_line_before(hub):
    t = await hub.tenant()
    a = await enroll(t)
    base = await _deny_list(t)
    await t.token.post(base + "/entries", json={"add": [{"network": "192.0.2.1"}]})
    async with a.stream(wait_s=30) as lines:
        first = await lines.next()
        assert lines.conn.status_code == 200
        assert lines.conn.headers["Content-Type"] == "application/x-ndjson"
        assert [(x["mode"], x["revision"]) for x in first["lists"]] == [("snapshot", 1)]
        assert unpacked(first["lists"][0]["entries"]) == ["192.0.2.1"]
        for n, host in enumerate(["192.0.2.2", "192.0.2.3"], start=2):
            await t.token.post(base + "/entries", json={"add": [{"network": host}]})
            doc = await lines.next()
            (item,) = doc["lists"]
            assert (item["mode"], item["since"], item["revision"]) == ("delta", n - 1, n)
            assert unpacked(item["added"]) == [host]
            assert doc["etag"] != first["etag"]
        await lines.conn.disconnect()


async def test_the_stream_sends_nothing_for_the_etag_the_agent_holds_and_ends_after_wait_s(hub):
    _, a = await _holding_agent(hub)
    assert a.etag is not None  # holds the current etag now
    async with a.stream(wait_s=0.2) as lines:
        assert await lines.next() is None  # nothing new: ended, cleanly, without a line
    assert hub.app.extensions["bulwark_agents"].pending_pushes == 0


async def test_a_newer_request_of_the_same_agent_ends_the_stream(hub):
    _, a = await _holding_agent(hub)
    async with a.stream(wait_s=30) as lines:
        await asyncio.sleep(0.05)
        assert await a.desired(wait_s=0) is None  # the newer one takes the turn
        assert await lines.next() is None


async def test_revoking_a_streaming_agent_ends_its_stream_with_the_error(hub):
    t, a = await _holding_agent(hub)
    async with a.stream(wait_s=30) as lines:
        await asyncio.sleep(0.05)
        r = await t.owner.post(f"{t.base}/agents/{a.id}/revoke")
        assert r.status_code == 200, await r.get_data(as_text=True)
        last = await lines.next()
        assert last["error"] == "unauthenticated"
        assert await lines.next() is None


async def test_hanging_up_ends_the_wait_at_once(hub):
    _, a = await _holding_agent(hub)
    live: agent_service.LiveAgents = hub.app.extensions["bulwark_agents"]
    async with a.stream(wait_s=30) as lines:
        for _ in range(100):
            if live.pending_pushes:
                break
            await asyncio.sleep(0.01)
        assert live.pending_pushes == 1
        await lines.conn.disconnect()
    assert live.pending_pushes == 0


async def test_a_streamed_plan_is_sent_once_then_taken_as_held(hub):
    """After the document that carried the Plan, later lines do not repeat it (the agent
    holds it), as a long-poll with the new applied digest would not."""
    t = await hub.tenant()
    a = await enroll(t)
    base = await _deny_list(t, "crowdsec-ban")  # the list web.bw's blocklist names
    r = await t.token.post(t.base + "/policies", json={"name": "web", "source": WEB})
    assert r.status_code == 201, await r.get_data(as_text=True)
    r = await t.token.post(t.base + "/deployments", json={"policy_id": (await r.get_json())["id"], "agent_ids": [a.id]})
    assert r.status_code in (200, 201, 202), await r.get_data(as_text=True)
    async with a.stream(wait_s=30) as lines:
        first = await lines.next()
        assert "plan" in first and first["mode"] == "enforce"
        await t.token.post(base + "/entries", json={"add": [{"network": "192.0.2.9"}]})
        second = await lines.next()
        assert "plan" not in second and second["deployment"] == first["deployment"]
        assert second["signature"] == first["signature"]
        await lines.conn.disconnect()


async def test_stream_must_be_a_boolean(hub):
    a = await enroll(await hub.tenant())
    r = await a.post("/agent/v1/desired", json={"stream": "yes please"})
    assert r.status_code == 400
    assert [d["loc"] for d in (await r.get_json())["details"]] == [["stream"]]


async def test_a_stopping_hub_ends_its_streams_at_once(hub):
    """SIGTERM's `stop_waiting`: a stream held for minutes would hold the shutdown until
    Hypercorn's graceful wait cut it."""
    from hub.app import stop_waiting

    _, a = await _holding_agent(hub)
    async with a.stream(wait_s=300) as lines:
        await asyncio.sleep(0.05)
        stop_waiting(hub.app)
        assert await lines.next(timeout_s=5) is None

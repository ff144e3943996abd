"""The agent protocol fuzzed with hypothesis: whatever body, content type or credential
arrives on /agent/v1/*, the answer is a 4xx or a 2xx, never a 5xx, and the hub keeps
serving the honest agent next to it.

One hub runs for the whole module in an event loop of its own thread; each example is a
request sent into it, so hypothesis can draw (and shrink) many of them cheaply.
"""
from __future__ import annotations

import asyncio
import json
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hub.harness import HubHarness, enroll

ROUTES = ["/agent/v1/desired", "/agent/v1/status", "/agent/v1/metrics", "/agent/v1/enroll"]
FIELDS = ["etag", "applied_digest", "lists", "wait_s", "failed_digest", "healthy", "mode", "list_revisions",
          "errors", "drift", "inventory", "points", "top_sources", "ts", "rule", "packets", "bytes",
          "interval_s", "source", "join_token", "hostname", "interfaces", "xdp_mode"]

scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40)
           | st.sampled_from(["", "\u0000", "enforce", "native", "a" * 70, "ab" * 32, "1.2.3.4/32", "::1"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), inner, max_size=4),
                      max_leaves=20)
bodies = st.dictionaries(st.sampled_from(FIELDS), values, max_size=6) | values


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def run(coro, timeout_s: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout_s)

    hub = HubHarness(tmp_path_factory.mktemp("fuzz"))
    run(hub.__aenter__())
    agent = run(_agent(hub))
    try:
        yield run, hub, agent
    finally:
        run(hub.__aexit__(None, None, None))
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


async def _agent(hub):
    return await enroll(await hub.tenant())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(route=st.sampled_from(ROUTES), body=bodies, raw=st.booleans(),
       content_type=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", ""]),
       credential=st.sampled_from(["agent", "none", "garbage"]))
def test_no_body_makes_the_agent_protocol_fail(live, route, body, raw, content_type, credential):
    run, hub, agent = live
    if isinstance(body, dict) and route == "/agent/v1/desired":
        body["wait_s"] = 0  # a valid long-poll would wait: this is about what breaks, not what waits
    data = json.dumps(body).encode() if not raw else json.dumps(body)[:-1].encode()  # raw: cut short
    headers = {"Content-Type": content_type} if content_type else {}
    if credential == "agent":
        headers["Authorization"] = f"Bearer {agent.token}"
    elif credential == "garbage":
        headers["Authorization"] = "Bearer bwa_" + "z" * 40

    async def send():
        r = await hub.client().post(route, data=data, headers=headers)
        return r.status_code, await r.get_data()

    status, answer = run(send())
    assert status < 500, (status, answer[:300])
    if status >= 400:
        assert json.loads(answer)["error"]  # the hub's error body, never a traceback

    async def honest():  # the hub still serves an agent that behaves
        r = await agent.post("/agent/v1/desired", json={"wait_s": 0})
        return r.status_code

    assert run(honest()) == 200

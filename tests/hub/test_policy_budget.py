"""Policy saves and deploys are bounded work off the event loop (issue 12, item 1)."""
from __future__ import annotations

import asyncio
import importlib
import ipaddress
import time

from tests.hub.harness import HubHarness

check = importlib.import_module("rules_dsl.check")


def big_policy(n: int = 5000) -> str:
    """A set of `n` non-adjacent addresses referenced by four rules (the reported case:
    31.5 s to save, 50.8 s to deploy, /healthz silent meanwhile)."""
    addrs = ", ".join(str(ipaddress.ip_address(0x0A000000 + 2 * i)) for i in range(n))
    return (f'policy "big"\ndefault pass\nset big {{ {addrs} }}\n'
            "pass tcp from @big dport 1-1024\ndrop tcp from @big dport 22\n"
            "drop tcp from @big dport 80\ndrop tcp from @big dport 443\n")


async def _save_while_polling_healthz(hub, t, source):
    """(save response, healthz latencies answered while the save ran, save seconds)."""
    client = hub.client()
    started = time.perf_counter()
    save = asyncio.create_task(t.token.post(t.base + "/policies", json={"name": "big", "source": source}))
    latencies: list[float] = []
    while not save.done():
        t0 = time.perf_counter()
        r = await client.get("/healthz")
        assert r.status_code == 200
        if not save.done():
            latencies.append(time.perf_counter() - t0)
        await asyncio.sleep(0.005)
    return await save, latencies, time.perf_counter() - started


async def test_a_large_set_saves_while_healthz_keeps_answering(hub):
    t = await hub.tenant()
    r, latencies, took = await _save_while_polling_healthz(hub, t, big_policy())
    assert r.status_code == 201, await r.get_data(as_text=True)
    body = await r.get_json()
    assert body["latest"]["errors"] == 0 and body["latest"]["warnings"] >= 3
    # /healthz answered while the save ran: the check is off the event loop.
    assert latencies
    latencies.sort()
    print(f"save {took:.2f} s; healthz n={len(latencies)} "
          f"p99={latencies[int(len(latencies) * 0.99) - 1] * 1000:.1f} ms")


async def test_the_large_policy_deploys(hub):
    from tests.hub.harness import enroll

    t = await hub.tenant()
    await enroll(t, labels=["web"])
    r = await t.token.post(t.base + "/policies", json={"name": "big", "source": big_policy()})
    policy = await r.get_json()
    r = await t.token.post(t.base + "/deployments", json={"policy_id": policy["id"], "labels": ["web"]})
    assert r.status_code == 201, await r.get_data(as_text=True)


async def test_past_the_check_budget_a_save_is_a_clear_422(hub, monkeypatch):
    monkeypatch.setattr(check, "MAX_SHADOW_WORK", 1000)
    t = await hub.tenant()
    r = await t.token.post(t.base + "/policies", json={"name": "big", "source": big_policy(500)})
    assert r.status_code == 422
    body = await r.get_json()
    assert body["error"] == "unprocessable" and "too large to check" in body["message"]


async def test_past_the_time_budget_a_save_is_a_clear_422(tmp_path):
    async with HubHarness(tmp_path, policy_check_timeout_s=0.001) as hub:
        t = await hub.tenant()
        r = await t.token.post(t.base + "/policies", json={"name": "big", "source": big_policy(2000)})
        assert r.status_code == 422
        assert "took longer than" in (await r.get_json())["message"]

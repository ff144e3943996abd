"""Benchmark: N agents hold waiting desired-state requests on one hub process (Hypercorn,
real HTTP on loopback); a list change goes in through the API; print p50/p99 of the time
until every agent has received it.

    .venv/bin/python bench/hub_longpoll.py --agents 1000 --rounds 3
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid

import httpx
from hypercorn.asyncio import serve
from hypercorn.config import Config as HypercornConfig

from hub.app import create_app
from hub.config import load_config


async def main(n_agents: int, rounds: int, port: int) -> None:
    from hub.models import Agent
    from hub.security import make_credential
    from hub.services import accounts, tenants
    from hub.services.scope import Principal, resolve_scope

    data_dir = tempfile.mkdtemp(prefix="bulwark-bench-")
    config = load_config(env={}, data_dir=data_dir, argon2_memory_kib=1024, argon2_time_cost=1,
                         long_poll_max_s=120)
    app = create_app(config)
    rt = app.extensions["bulwark"]
    hc = HypercornConfig()
    hc.bind = [f"127.0.0.1:{port}"]
    hc.accesslog = None
    hc.errorlog = None
    hc.backlog = 4096
    stop = asyncio.Event()
    server = asyncio.create_task(serve(app, hc, shutdown_trigger=stop.wait))
    while "bulwark_db" not in app.extensions:
        await asyncio.sleep(0.05)

    user = await accounts.create_user(rt, "bench@example.com", "bench password 123")
    owner = Principal(actor="user:bench", user_id=user.id)
    tenant = await tenants.create_tenant(rt, owner, "bench")
    scope = await resolve_scope(owner, tenant.id, "admin")
    _, api_token = await tenants.create_token(rt, scope, "bench", ["read", "write"], None)
    creds, rows = [], []
    for _ in range(n_agents):
        agent_id = uuid.uuid4()
        cred, h = make_credential("bwa", agent_id)
        creds.append(cred)
        rows.append(Agent(id=agent_id, tenant_id=tenant.id, credential_hash=h, hostname="sim"))
    await Agent.bulk_create(rows, batch_size=500)

    base = f"http://127.0.0.1:{port}"
    limits = httpx.Limits(max_connections=n_agents + 10, max_keepalive_connections=n_agents + 10)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=300) as client:
        api = {"Authorization": f"Bearer {api_token}"}
        r = await client.post(f"/api/v1/tenants/{tenant.id}/lists", json={"name": "bad", "kind": "deny"}, headers=api)
        list_id = r.json()["id"]
        arrivals: list[float] = []
        expected = {"rev": 0}

        async def agent(cred: str) -> None:
            headers = {"Authorization": f"Bearer {cred}"}
            etag, lists = None, {}
            while True:
                r = await client.post("/agent/v1/desired", headers=headers,
                                      json={"etag": etag, "lists": lists, "wait_s": 100})
                if r.status_code != 200:
                    continue
                doc = r.json()
                etag = doc["etag"]
                for lst in doc["lists"]:
                    lists[lst["id"]] = lst["revision"]
                if lists.get(list_id, 0) == expected["rev"] and expected["rev"] > 0:
                    arrivals.append(time.perf_counter())

        tasks = [asyncio.create_task(agent(c)) for c in creds]
        results = []
        for rnd in range(1, rounds + 1):
            while rt.notifier.waiting < n_agents:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            arrivals.clear()
            expected["rev"] = rnd
            t0 = time.perf_counter()
            r = await client.post(f"/api/v1/tenants/{tenant.id}/lists/{list_id}/entries", headers=api,
                                  json={"add": [{"network": f"203.0.113.{rnd}/32"}]})
            assert r.json()["revision"] == rnd, r.text
            while len(arrivals) < n_agents:
                await asyncio.sleep(0.01)
            lat = sorted((t - t0) * 1000 for t in arrivals)
            p50, p99 = statistics.median(lat), lat[int(0.99 * (len(lat) - 1))]
            results.append((p50, p99, lat[-1]))
            print(f"round {rnd}: {n_agents} agents  p50 {p50:.0f} ms  p99 {p99:.0f} ms  max {lat[-1]:.0f} ms", flush=True)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    stop.set()
    await server
    print(f"summary: agents={n_agents} p50={statistics.median(r[0] for r in results):.0f}ms "
          f"p99={max(r[1] for r in results):.0f}ms (target p99 <= 250 ms at 1,000)")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--agents", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--port", type=int, default=18443)
    args = p.parse_args()
    asyncio.run(main(args.agents, args.rounds, args.port))

"""Benchmark: N agents hold waiting desired-state requests on one hub process (Hypercorn,
real HTTP on loopback, the hub in its own process); a list change goes in through the
API; print p50/p99 of the time from sending the change until each agent has received
it, per round, and the median over rounds.

    .venv/bin/python bench/hub_longpoll.py --agents 1000 --rounds 5 --json out.json
    .venv/bin/python bench/hub_longpoll.py --agents 10000 --database-url postgres://...
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

from hubsim import Conn, new_config, prepare, started


async def main(n_agents: int, rounds: int, port: int, database_url: str, processes: int,
               json_path: str = "", long_poll: bool = False) -> None:
    if processes > 1 and not database_url:
        raise SystemExit("several hub processes wake each other through PostgreSQL: give --database-url")
    config = new_config(database_url)
    setup = await prepare(config, n_agents)
    async with started(config, port, processes) as hub:
        api = await Conn.open(port)
        status, body = await api.request("POST", f"/api/v1/tenants/{setup.tenant_id}/lists",
                                         {"name": "bad", "kind": "deny"}, setup.api_token)
        assert status == 201, body
        list_id = body["id"]
        arrivals: list[float] = []
        reconnects: list[float] = []
        expected = {"rev": 0}

        def took(doc: dict, held: dict) -> None:
            held["etag"] = doc["etag"]
            for lst in doc["lists"]:
                held["lists"][lst["id"]] = lst["revision"]
            if expected["rev"] > 0 and held["lists"].get(list_id, 0) == expected["rev"]:
                arrivals.append(time.perf_counter())

        async def agent(cred: str, port: int) -> None:
            """As agent/hub_link.py asks: one streamed answer (or, with --long-poll, one
            request a change), again when it ends."""
            conn = await Conn.open(port)
            held: dict = {"etag": None, "lists": {}}
            while True:
                body = {"etag": held["etag"], "lists": held["lists"], "wait_s": 300}
                if not long_poll:
                    try:
                        async for doc in conn.stream("POST", "/agent/v1/desired", {**body, "stream": True}, cred):
                            took(doc, held)
                    except (ConnectionError, asyncio.IncompleteReadError):
                        reconnects.append(time.perf_counter())  # as the agent does: again, on a new connection
                        conn.close()
                        conn = await Conn.open(port)
                    continue
                status, doc = await conn.request("POST", "/agent/v1/desired", body, cred)
                if status != 200:
                    assert status == 204, (status, doc)
                    continue
                took(doc, held)

        tasks = []
        for i in range(0, n_agents, 200):  # connect in steps, not as one SYN flood
            tasks += [asyncio.create_task(agent(c, hub.ports[j % processes]))
                      for j, c in enumerate(setup.credentials[i:i + 200], start=i)]
            await asyncio.sleep(0.05)
        metrics = [await Conn.open(p) for p in hub.ports]
        results = []
        for rnd in range(1, rounds + 1):
            while sum([await gauge(m, "bulwark_hub_pending_pushes") for m in metrics]) < n_agents:
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.5)
            arrivals.clear()
            expected["rev"] = rnd
            with hub.profiled():
                cpu0, own0 = hub.cpu_s(), time.process_time()
                t0 = time.perf_counter()
                status, body = await api.request("POST", f"/api/v1/tenants/{setup.tenant_id}/lists/{list_id}/entries",
                                                 {"add": [{"network": f"203.0.113.{rnd}/32"}]}, setup.api_token)
                assert status == 200 and body["revision"] == rnd, body
                while len(arrivals) < n_agents:
                    await asyncio.sleep(0.01)
                cpu_ms, own_ms = (hub.cpu_s() - cpu0) * 1000, (time.process_time() - own0) * 1000
            lat = sorted((t - t0) * 1000 for t in arrivals)
            p50, p99 = statistics.median(lat), lat[int(0.99 * (len(lat) - 1))]
            results.append((p50, p99, cpu_ms))
            print(f"round {rnd}: {n_agents} agents  p50 {p50:.0f} ms  p99 {p99:.0f} ms  max {lat[-1]:.0f} ms  "
                  f"hub CPU {cpu_ms:.0f} ms  simulated agents' CPU {own_ms:.0f} ms  reconnects so far {len(reconnects)}", flush=True)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    db = "postgresql" if database_url else "sqlite"
    figures = {key: statistics.median(r[i] for r in results) for i, key in enumerate(("p50_ms", "p99_ms", "hub_cpu_ms"))}
    form = "long-poll" if long_poll else "streamed"
    print(f"summary: agents={n_agents} db={db} hub processes={processes} {form} median over {rounds} rounds: "
          f"p50={figures['p50_ms']:.0f}ms p99={figures['p99_ms']:.0f}ms hub CPU {figures['hub_cpu_ms']:.0f} ms "
          f"(target p99 <= 250 ms at 1,000)")
    if json_path:
        with open(json_path, "w") as f:
            json.dump(figures, f)


async def gauge(conn: Conn, name: str) -> float:
    status, text = await conn.request("GET", "/metrics", raw=True)
    for line in text.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise RuntimeError(f"{name} is not in /metrics")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--agents", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--port", type=int, default=18443)
    p.add_argument("--database-url", default="", help="postgres://... (default: SQLite in a temporary directory)")
    p.add_argument("--hub-processes", type=int, default=1, help="hub processes sharing a PostgreSQL database")
    p.add_argument("--long-poll", action="store_true", help="one request a change (agents before the streamed form)")
    p.add_argument("--json", default="", metavar="FILE", help="write the medians there (bench/report.py reads them)")
    args = p.parse_args()
    asyncio.run(main(args.agents, args.rounds, args.port, args.database_url, args.hub_processes, args.json,
                     args.long_poll))

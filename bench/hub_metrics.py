"""Benchmark: N agents post metrics batches to one hub process (Hypercorn, real HTTP on
loopback, the hub in its own process); print batches/s and p50/p99 latency.

A batch has the real agent's shape (agent/hub_link.py `metrics_body`): one point per
rule and the top dropped sources of one sample interval. Open loop: the agents together
offer `--rate` batches a second, each on its own connection and schedule, so a slow hub
shows as latency and a shortfall in batches/s rather than as a slower offer. `--rate 0`
is closed loop: every agent posts again as soon as it has its answer (the hub's ceiling).

    .venv/bin/python bench/hub_metrics.py --agents 1000 --rate 1000 --seconds 10 --rounds 3 --json out.json
    .venv/bin/python bench/hub_metrics.py --database-url postgres://user@127.0.0.1/bulwark --hub-processes 2
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time

from hubsim import Conn, Hubs, new_config, prepare, started

RULES = [f"rule-{i}" for i in range(10)]


def batch(now: int, rng: random.Random) -> dict:
    return {
        "points": [{"ts": now, "rule": r, "packets": rng.randrange(10_000), "bytes": rng.randrange(10_000_000),
                    "interval_s": 1} for r in RULES],
        "top_sources": [{"ts": now, "source": f"203.0.113.{rng.randrange(256)}", "packets": rng.randrange(1000)}
                        for _ in range(10)],
    }


async def main(n_agents: int, rate: float, seconds: float, port: int, database_url: str, processes: int,
               rounds: int = 1, json_path: str = "") -> None:
    config = new_config(database_url)
    setup = await prepare(config, n_agents)
    db = "postgresql" if database_url else "sqlite"
    offered = f"{rate:.0f}/s offered" if rate else "closed loop"
    results = []
    async with started(config, port, processes) as hub:
        conns = []
        for i in range(0, n_agents, 200):  # agents spread over the hub processes, as by a load balancer
            conns += await asyncio.gather(*(Conn.open(hub.ports[j % processes]) for j in range(i, min(n_agents, i + 200))))
        for rnd in range(1, rounds + 1):
            results.append(await measure(hub, conns, setup.credentials, rate, seconds, rnd))
        api = await Conn.open(port)
        status, body = await api.request("GET", f"/api/v1/tenants/{setup.tenant_id}/metrics?rule=rule-0",
                                         token=setup.api_token)
        stored = len(body["points"]) if status == 200 else f"query failed ({status})"
    figures = {key: statistics.median(r[key] for r in results) for key in ("batches_per_s", "p50_ms", "p99_ms")}
    print(f"summary: agents={n_agents} db={db} hub processes={processes} {offered}, median over {rounds} rounds: "
          f"{figures['batches_per_s']:.0f} batches/s p50={figures['p50_ms']:.1f}ms p99={figures['p99_ms']:.1f}ms; "
          f"rule-0 points queryable afterwards: {stored} (target >= 1,000 batches/s, p99 <= 200 ms)")
    if json_path:
        with open(json_path, "w") as f:
            json.dump(figures, f)


async def measure(hub: Hubs, conns: list[Conn], credentials: list[str], rate: float, seconds: float, rnd: int) -> dict:
    """One round: every agent posts for `seconds`; batches/s and latency of this round."""
    n_agents = len(conns)
    latencies: list[float] = []
    errors: list[int] = []
    last = [0.0]
    start = time.perf_counter() + 0.5
    end = start + seconds

    async def agent(conn: Conn, cred: str, seed: int) -> None:
        rng = random.Random(seed)
        period = n_agents / rate if rate else 0.0
        due = start + rng.random() * period
        while True:
            if period:
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
            sent = time.perf_counter()
            if sent >= end:
                return
            status, body = await conn.request("POST", "/agent/v1/metrics", batch(int(time.time()), rng), cred)
            done = time.perf_counter()
            last[0] = max(last[0], done)
            if status == 200 and body["accepted"] == len(RULES) + 10:
                latencies.append((done - sent) * 1000)
            else:
                errors.append(status)
            due += period

    with hub.profiled():  # HUBSIM_PROFILE=path: the hub's cProfile stats of the timed part (hubsim)
        cpu0, own0 = hub.cpu_s(), time.process_time()
        await asyncio.gather(*(agent(c, cred, rnd * n_agents + i) for i, (c, cred) in enumerate(zip(conns, credentials))))
        cpu, own = hub.cpu_s() - cpu0, time.process_time() - own0
    elapsed = max(last[0], end) - start  # not the agents' sleep past the end
    lat = sorted(latencies)
    out = {"batches_per_s": len(lat) / elapsed, "p50_ms": statistics.median(lat), "p99_ms": lat[int(0.99 * (len(lat) - 1))]}
    print(f"round {rnd}: {out['batches_per_s']:.0f} batches/s p50={out['p50_ms']:.1f}ms p99={out['p99_ms']:.1f}ms "
          f"errors={len(errors)} CPU: hub {100 * cpu / elapsed:.0f}%, agents {100 * own / elapsed:.0f}% of a core",
          flush=True)
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--agents", type=int, default=1000)
    p.add_argument("--rate", type=float, default=1000, help="batches/s offered in total; 0: closed loop")
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--port", type=int, default=18444)
    p.add_argument("--database-url", default="", help="postgres://... (default: SQLite in a temporary directory)")
    p.add_argument("--hub-processes", type=int, default=1, help="hub processes sharing the database")
    p.add_argument("--rounds", type=int, default=1, help="measurements on the same hub; figures are their medians")
    p.add_argument("--json", default="", metavar="FILE", help="write the medians there (bench/report.py reads them)")
    args = p.parse_args()
    asyncio.run(main(args.agents, args.rate, args.seconds, args.port, args.database_url, args.hub_processes,
                     args.rounds, args.json))

"""Benchmark: the panel's dashboard with 100 agents, rendered on the server by a real hub
process (Hypercorn on loopback), p50/p95 of N sequential requests; beside it, from the
same run and the same connection, /healthz (the hub's cheapest answer) and a static file.

The agents are made in the database, then each reports its status (XDP mode, mode) and
one metrics batch of the real agent's shape — 15 minutes of 30 s points over 8 counter
slots and top sources — through the agent protocol, so the page reads what a live hub has.

    .venv/bin/python bench/panel.py --agents 100 --requests 200 --rounds 3 --json out.json
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time

import httpx
from hubsim import BENCH_PASSWORD, Setup, new_config, prepare, started

SLOTS = [f"rule{i}" for i in range(6)] + ["default", "malformed"]
HISTORY_S, STEP_S = 15 * 60, 30


def history(now: int, rng: random.Random) -> dict:
    ts = range(now - HISTORY_S + STEP_S, now + 1, STEP_S)
    return {"points": [{"ts": t, "rule": r, "packets": rng.randrange(100_000), "bytes": rng.randrange(10**8),
                        "interval_s": STEP_S} for t in ts for r in SLOTS],
            "top_sources": [{"ts": now, "source": f"203.0.113.{rng.randrange(256)}", "packets": rng.randrange(10**4)}
                            for _ in range(10)]}


def ok(r: httpx.Response) -> httpx.Response:
    if r.status_code != 200:
        raise SystemExit(f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:300]}")
    return r


async def timed(client: httpx.AsyncClient, path: str, n: int, must_contain: str = "") -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = await client.get(path)
        out.append((time.perf_counter() - t0) * 1000)
        ok(r)
        if must_contain and must_contain not in r.text:
            raise SystemExit(f"{path}: the page lacks {must_contain!r}")
    return sorted(out)


async def sign_in(client: httpx.AsyncClient, setup: Setup) -> None:
    """Password, then the second factor: without it the panel sends every page to the 2FA
    set-up, and the bench would time a redirect."""
    import pyotp

    r = ok(await client.post("/auth/login", json={"email": setup.email, "password": BENCH_PASSWORD}))
    ok(await client.post("/auth/second-factor", json={"code": pyotp.parse_uri(setup.otpauth).now()},
                         headers={"X-CSRF-Token": r.json()["csrf_token"]}))


def p(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


async def main(n_agents: int, requests: int, rounds: int, port: int, json_path: str) -> None:
    config = new_config()
    setup = await prepare(config, n_agents)
    rng = random.Random(7)
    async with started(config, port) as _, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
        now = int(time.time())
        for cred in setup.credentials:
            auth = {"Authorization": f"Bearer {cred}"}
            ok(await c.post("/agent/v1/status", headers=auth,
                            json={"healthy": True, "mode": "enforce", "xdp_mode": rng.choice(["native", "generic"])}))
            ok(await c.post("/agent/v1/metrics", headers=auth, json=history(now, rng)))
        await sign_in(c, setup)
        page = f"/t/{setup.tenant_id}/"
        await timed(c, page, 5, must_contain="Dashboard")  # warm: templates compiled, caches filled
        rows = (await c.get(page)).text.count("<tr data-agent=")
        if rows != n_agents:
            raise SystemExit(f"the dashboard shows {rows} agents, not {n_agents}")
        results = []
        for rnd in range(1, rounds + 1):
            dash = await timed(c, page, requests)
            health = await timed(c, "/healthz", requests)
            static = await timed(c, "/panel/static/panel.css", requests)
            r = {"dashboard_p50_ms": statistics.median(dash), "dashboard_p95_ms": p(dash, 0.95),
                 "healthz_p95_ms": p(health, 0.95), "static_p95_ms": p(static, 0.95)}
            print(f"round {rnd}: dashboard ({n_agents} agents) p50={r['dashboard_p50_ms']:.1f}ms "
                  f"p95={r['dashboard_p95_ms']:.1f}ms; /healthz p95={r['healthz_p95_ms']:.1f}ms; "
                  f"static file p95={r['static_p95_ms']:.1f}ms", flush=True)
            results.append(r)
    figures = {k: statistics.median(r[k] for r in results) for k in results[0]}
    print(f"summary: dashboard with {n_agents} agents, {requests} requests x {rounds} rounds (medians): "
          f"p95={figures['dashboard_p95_ms']:.1f}ms p50={figures['dashboard_p50_ms']:.1f}ms; peers p95: "
          f"/healthz {figures['healthz_p95_ms']:.1f}ms, static file {figures['static_p95_ms']:.1f}ms "
          f"(target: dashboard p95 <= 100 ms)")
    if json_path:
        with open(json_path, "w") as f:
            json.dump(figures, f)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=100)
    ap.add_argument("--requests", type=int, default=200, help="requests per page per round")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--port", type=int, default=18461)
    ap.add_argument("--json", default="", metavar="FILE", help="write the medians there (bench/report.py reads them)")
    args = ap.parse_args()
    asyncio.run(main(args.agents, args.requests, args.rounds, args.port, args.json))

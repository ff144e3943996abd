"""Benchmark: a 1,000,000-entry deny list on the hub (its own process, real HTTP on
loopback): import through the public API, the snapshot an agent that knows nothing gets,
then one entry changed and the delta an agent one revision behind gets.

    .venv/bin/python bench/hub_lists.py [--entries 1000000] [--rounds 3] [--json FILE]

The hub's peak RSS is read from /proc after the last round. Figures are medians of the
rounds (a fresh list each round); the machine is shared and noisy.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

from hubsim import Conn, new_config, prepare, started


def hosts(count: int, salt: int) -> bytes:
    """`count` distinct IPv4 hosts, one a line (100.64.0.0/10 and onwards)."""
    base = (100 << 24) + (64 << 16) + salt * count
    return "\n".join(f"{a >> 24 & 255}.{a >> 16 & 255}.{a >> 8 & 255}.{a & 255}"
                     for a in range(base, base + count)).encode()


async def one_round(api: Conn, agent: Conn, setup, entries: int, rnd: int,
                    known: dict[str, int]) -> dict[str, float]:
    """One fresh list; `known` holds the revisions the agent has of earlier rounds' lists."""
    lists = f"/api/v1/tenants/{setup.tenant_id}/lists"
    status, made = await api.request("POST", lists, {"name": f"bench-{rnd}", "kind": "deny"}, token=setup.api_token)
    assert status == 201, made
    base = f"{lists}/{made['id']}"
    text = hosts(entries, rnd)
    start = time.perf_counter()
    status, result = await api.request("POST", f"{base}/import", token=setup.api_token, text=text)
    imported = time.perf_counter() - start
    assert status == 200 and result["entries"] == entries, result

    start = time.perf_counter()
    status, payload = await agent.request("POST", "/agent/v1/desired", {"wait_s": 0, "lists": known},
                                          token=setup.credentials[0], raw=True)
    snapshot = time.perf_counter() - start
    doc = json.loads(payload)
    ours = next(x for x in doc["lists"] if x["id"] == made["id"])
    assert status == 200 and ours["mode"] == "snapshot" and len(ours["entries"]) == entries

    start = time.perf_counter()
    status, changed = await api.request("POST", f"{base}/entries", {"remove": ["100.64.0.0/32" if rnd == 0 else
                                                                              ours["entries"][0]]},
                                        token=setup.api_token)
    change = time.perf_counter() - start
    assert status == 200 and changed["removed"] == 1, changed

    known.update({x["id"]: x["revision"] for x in doc["lists"]})
    start = time.perf_counter()
    status, doc = await agent.request("POST", "/agent/v1/desired", {"wait_s": 0, "lists": known},
                                      token=setup.credentials[0])
    delta = time.perf_counter() - start
    ours = next(x for x in doc["lists"] if x["id"] == made["id"])
    assert ours["mode"] == "delta" and len(ours["removed"]) == 1, ours
    known[made["id"]] = ours["revision"]
    figures = {"import_s": imported, "snapshot_s": snapshot, "snapshot_mb": len(payload) / 2**20,
               "change_ms": change * 1000, "delta_ms": delta * 1000}
    print(f"round {rnd}: import {imported:.2f} s, snapshot to an agent {snapshot:.2f} s "
          f"({figures['snapshot_mb']:.1f} MB), one-entry change {change * 1000:.0f} ms, "
          f"its delta {delta * 1000:.1f} ms", flush=True)
    return figures


async def main(entries: int, rounds: int, port: int, database_url: str, json_path: str) -> None:
    config = new_config(database_url)
    setup = await prepare(config, 1)
    async with started(config, port) as hub:
        api, agent = await Conn.open(port), await Conn.open(port)
        known: dict[str, int] = {}
        results = [await one_round(api, agent, setup, entries, rnd, known) for rnd in range(rounds)]
        with open(f"/proc/{hub.pids[0]}/status") as f:
            peak = next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024
    figures = {key: statistics.median(r[key] for r in results) for key in results[0]}
    figures["hub_peak_rss_mb"] = peak
    print(f"summary: {entries:,} entries, median of {rounds}: import {figures['import_s']:.2f} s, snapshot "
          f"{figures['snapshot_s']:.2f} s, one-entry change {figures['change_ms']:.0f} ms, delta "
          f"{figures['delta_ms']:.1f} ms; hub peak RSS {peak:.0f} MB")
    if json_path:
        with open(json_path, "w") as f:
            json.dump(figures, f)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--entries", type=int, default=1_000_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--port", type=int, default=18445)
    p.add_argument("--database-url", default="", help="postgres://... (default: SQLite in a temporary directory)")
    p.add_argument("--json", default="")
    a = p.parse_args()
    asyncio.run(main(a.entries, a.rounds, a.port, a.database_url, a.json))

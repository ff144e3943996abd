"""Benchmark: a 1,000,000-entry deny list on the hub (its own process, real HTTP on
loopback): import through the public API, the snapshot an agent that knows nothing gets
(until it holds the list as the agent does: decoded from the packed form and persisted),
then one entry changed, the delta an agent one revision behind gets, and the snapshot of
the next newcomer (carried forward by that delta on the hub, not read from the table).

    .venv/bin/python bench/hub_lists.py [--entries 1000000] [--rounds 3] [--json FILE]

The hub's peak RSS is read from /proc after the last round. Figures are medians of the
rounds (a fresh list each round); the machine is shared and noisy.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.entries import from_wire  # noqa: E402
from agent.state import Desired, ListState, StateStore  # noqa: E402
from hubsim import Conn, new_config, prepare, started  # noqa: E402


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

    snapshot, doc, held, payload, received = await newcomer(agent, setup, known, made["id"], entries)

    start = time.perf_counter()
    status, changed = await api.request("POST", f"{base}/entries", {"remove": [f"{next(iter(held))}/32"]},
                                        token=setup.api_token)
    change = time.perf_counter() - start
    assert status == 200 and changed["removed"] == 1, changed
    warm, *_ = await newcomer(agent, setup, known, made["id"], entries - 1)

    known.update({x["id"]: x["revision"] for x in doc["lists"]})
    start = time.perf_counter()
    status, doc = await agent.request("POST", "/agent/v1/desired", {"wait_s": 0, "lists": known},
                                      token=setup.credentials[0])
    delta = time.perf_counter() - start
    ours = next(x for x in doc["lists"] if x["id"] == made["id"])
    assert ours["mode"] == "delta" and len(from_wire(ours["removed"])) == 1, ours
    known[made["id"]] = ours["revision"]
    figures = {"import_s": imported, "snapshot_s": snapshot, "snapshot_mb": len(payload) / 2**20,
               "snapshot_received_s": received, "snapshot_after_change_s": warm,
               "change_ms": change * 1000, "delta_ms": delta * 1000}
    print(f"round {rnd}: import {imported:.2f} s, snapshot to a new agent {snapshot:.2f} s (received "
          f"{received:.2f} s, {figures['snapshot_mb']:.1f} MB), after a change {warm:.2f} s, one-entry change "
          f"{change * 1000:.0f} ms, its delta {delta * 1000:.1f} ms", flush=True)
    return figures


async def newcomer(agent: Conn, setup, known: dict[str, int], list_id: str, entries: int):
    """Seconds until an agent that knows nothing of the list holds it as the agent does:
    the hub's document (built, sent), parsed, the packed list decoded and persisted."""
    start = time.perf_counter()
    status, payload = await agent.request("POST", "/agent/v1/desired", {"wait_s": 0, "lists": known},
                                          token=setup.credentials[0], raw=True)
    received = time.perf_counter() - start
    doc = json.loads(payload)
    ours = next(x for x in doc["lists"] if x["id"] == list_id)
    held = from_wire(ours["entries"])
    with tempfile.TemporaryDirectory() as state_dir:
        StateStore(state_dir).save(Desired(lists=(ListState(ours["name"], ours["revision"], held, list_id),)))
        took = time.perf_counter() - start
    assert status == 200 and ours["mode"] == "snapshot" and len(held) == entries
    return took, doc, held, payload, received


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
          f"{figures['snapshot_s']:.2f} s (after a change {figures['snapshot_after_change_s']:.2f} s), one-entry change {figures['change_ms']:.0f} ms, delta "
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

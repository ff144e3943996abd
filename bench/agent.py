"""Agent benchmarks: the idle daemon's footprint with a big list, and how fast desired
states reach the maps.

    .venv/bin/python bench/agent.py [--entries 1000000] [--idle-s 30] [--repeat 3]
                                    [--only idle|latency] [--json FILE]

1. RSS and CPU of an idle `bulwark agent run` (persisted state holding a Plan whose set
   names a 1,000,000-entry list, sampler and watchdog running) in a throwaway namespace,
   standalone and managed (enrolled with an https hub that does not answer: the hub link
   and its HTTP client loaded, backing off). Targets: under 80 MB RSS, under 1 % of a core.
2. Time from a hub document in hand (the shape the hub sends: lists packed, base64; see
   docs/agent-protocol.md) through the hub link's decoding, the reconciler's checks (the
   hub's signature against the pinned key, the lockout guard) to the maps updated,
   in-process, for a 1-entry and a 100,000-entry list delta on top of the 1,000,000-entry
   list; and a whole re-apply from a snapshot (generation flip).
The persisted state of 1. is what the hub link keeps of the hub's snapshot document.
The documents are built here, not fetched from a hub process: their lists are packed by
the same `rules_dsl.addresses.Packed` the hub packs its stored rows with (bare hosts, as
the hub stores them: the same bytes), and signed by the hub's own signer
(`hub.services.plan_signing`). bench/e2e_scale.py measures the agent behind a real hub.
Each measure is run --repeat times; the median is reported (the runs too).
Needs root. Figures are from a shared, noisy machine: read the ratios.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.config import AgentConfig  # noqa: E402
from agent.hub_link import DesiredTracker, save_credential  # noqa: E402
from agent.trust import save_pin  # noqa: E402
from agent.state import StateStore  # noqa: E402
from bpf import ensure_bpffs  # noqa: E402
from hub.config import HubConfig  # noqa: E402
from hub.services.plan_signing import PlanSigner  # noqa: E402
from rules_dsl import load  # noqa: E402
from rules_dsl.addresses import Packed, to_wire  # noqa: E402
from tests.netlab import VethLab  # noqa: E402

POLICY = """policy "bench"
default pass
set bad { 198.51.100.0/24, list "ban" }
drop from @bad
drop udp dport 7777
stateful {
    drop tcp dport 24
}
"""


def hosts(n: int, base: int = 0x0A000000) -> list[str]:
    return [f"{(a >> 24) & 255}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}" for a in range(base, base + n)]


AGENT_ID, DEPLOYMENT_ID = "bench", "d1"


def hub_signer(root: Path, cfg: AgentConfig) -> PlanSigner:
    """The hub's Plan signer with a key of its own under root, pinned on the agent as
    enrolment pins it: without it the reconciler refuses every hub Plan."""
    signer = PlanSigner(HubConfig(data_dir=str(root / "hub")))
    save_pin(cfg, AGENT_ID, signer.public_key)
    return signer


def hub_document(plan, revision: int, signer: PlanSigner, *, snapshot: list[str] | None = None,
                 added: list[str] = (), removed: list[str] = (), since: int | None = None) -> dict:
    """A desired-state document as the hub sends it (docs/agent-protocol.md): the list
    packed and base64-encoded, a snapshot or a delta since `since`, the Plan signed."""
    item = {"id": "L1", "name": "ban", "kind": "deny", "revision": revision}
    if snapshot is not None:
        item.update(mode="snapshot", entries=to_wire(Packed(snapshot)))
    else:
        item.update(mode="delta", since=since, added=to_wire(Packed(list(added))),
                    removed=to_wire(Packed(list(removed))))
    return {"agent_id": AGENT_ID, "etag": f"e{revision}", "mode": "enforce",
            "deployment": {"id": DEPLOYMENT_ID, "digest": plan.digest}, "plan": json.loads(plan.to_json()),
            "lists": [item], "signature": signer.sign(AGENT_ID, DEPLOYMENT_ID, plan.digest, "enforce")}


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def idle_footprint(lab: VethLab, root: Path, entries: int, idle_s: float, port: int,
                   managed: bool = False) -> dict:
    plan = load(POLICY, "bench.bw").plan
    cfg = AgentConfig(name="bench", iface=lab.iface, netns=lab.ns, xdp_mode="native",
                      pin_root=str(root / "pins"), state_root=str(root / "state"), http_port=port)
    # what the hub link persists from the hub's snapshot document
    doc = hub_document(plan, 1, hub_signer(root, cfg), snapshot=hosts(entries))
    StateStore(cfg.state_dir).save(DesiredTracker(None).update(doc))
    if managed:  # a hub on a port nobody listens on: the link loads and backs off
        save_credential(cfg, "https://127.0.0.1:9", AGENT_ID, "bwa_bench_x")
    argv = [sys.executable, "-c", "import sys; from agent.cli import main; sys.exit(main(sys.argv[1:]))",
            "run", "--name", "bench", "--iface", lab.iface, "--netns", lab.ns, "--pin-root", cfg.pin_root,
            "--state-root", cfg.state_root, "--http-port", str(port)]
    t0 = time.monotonic()
    child = subprocess.Popen(argv, cwd=ROOT, stderr=open(root / "agent.log", "w"))
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=1) as r:
                    if json.loads(r.read())["applied_digest"] == plan.digest:
                        break
            except OSError:
                pass
            if time.monotonic() - t0 > 120 or child.poll() is not None:
                raise RuntimeError("agent did not apply in 120 s: " + (root / "agent.log").read_text()[-3000:])
            time.sleep(0.2)
        startup_s = time.monotonic() - t0
        time.sleep(2)  # let the first samples settle
        cpu0, t1 = proc_cpu_s(child.pid), time.monotonic()
        time.sleep(idle_s)
        cpu = (proc_cpu_s(child.pid) - cpu0) / (time.monotonic() - t1)
        return {"entries": entries, "managed": managed, "start_to_applied_s": round(startup_s, 2),
                "idle_rss_mb": round(proc_rss_mb(child.pid), 1), "idle_cpu_percent": round(cpu * 100, 2)}
    finally:
        child.terminate()
        child.wait()


async def delta_latency(lab: VethLab, root: Path, entries: int) -> dict:
    import trio

    from agent.daemon import build, run_agent

    plan = load(POLICY, "bench.bw").plan
    cfg = AgentConfig(name="lat", iface=lab.iface, netns=lab.ns, xdp_mode="native",
                      pin_root=str(root / "pins"), state_root=str(root / "state"), http_port=0)
    signer = hub_signer(root, cfg)
    agent = build(cfg)
    tracker = DesiredTracker(None)
    out = {}

    async def timed(doc: dict) -> float:
        """From the hub's document in hand to the maps holding it (the hub link's decoding
        included)."""
        await trio.sleep(1.0)  # the agent idle: the previous apply's table and persist done
        t0 = trio.current_time()
        desired = tracker.update(doc)
        await agent.to_reconciler.send(desired)
        while agent.dataplane.maps_desired is not desired:  # set once the maps hold it
            await trio.sleep(0.0005)
        return trio.current_time() - t0

    async with trio.open_nursery() as nursery:
        await nursery.start(run_agent, agent)
        out["initial_apply_1M_s"] = round(await timed(hub_document(plan, 1, signer, snapshot=hosts(entries))), 3)
        rev = 1
        for size in (1, 100_000):
            added = hosts(size, base=0x0B000000 + rev * 0x100000)
            rev += 1
            out[f"delta_{size}_s"] = round(await timed(hub_document(plan, rev, signer, added=added, since=rev - 1)), 4)
        rev += 1
        out["whole_reapply_s"] = round(await timed(hub_document(
            plan, rev, signer, snapshot=list(tracker.lists["L1"].entries) + ["192.0.2.77"])), 3)
        nursery.cancel_scope.cancel()
    agent.dataplane.close()
    return out


def main() -> int:
    import trio

    p = argparse.ArgumentParser()
    p.add_argument("--entries", type=int, default=1_000_000)
    p.add_argument("--idle-s", type=float, default=30)
    p.add_argument("--port", type=int, default=19731)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--only", choices=("idle", "latency"))
    p.add_argument("--json")
    args = p.parse_args()
    results = {}
    for what in ("idle", "idle_managed", "latency"):
        if args.only not in (None, what.split("_")[0]):
            continue
        runs = []
        for _ in range(args.repeat):
            pin_root = Path(tempfile.mkdtemp(prefix="bulwark-bench-", dir=ensure_bpffs()))
            lab = VethLab.create("bench")
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    root = Path(tmp)
                    os.symlink(pin_root, root / "pins")
                    if what.startswith("idle"):
                        runs.append(idle_footprint(lab, root, args.entries, args.idle_s, args.port,
                                                   managed=what == "idle_managed"))
                    else:
                        runs.append(trio.run(delta_latency, lab, root, args.entries))
                    print(json.dumps(runs[-1]), flush=True)
            finally:
                lab.remove()
                subprocess.run(["rm", "-rf", str(pin_root)], check=False)
        results[what] = {"median": {k: statistics.median(r[k] for r in runs) for k in runs[0]}, "runs": runs}
        print("median", what, json.dumps(results[what]["median"]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

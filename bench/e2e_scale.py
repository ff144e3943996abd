"""Benchmark: a 1,000,000-entry deny list through the real hub and two real agents, timed
the way a user would time it: from the API call to the last packet of the newly denied
source seen behind the guard.

    .venv/bin/python bench/e2e_scale.py [--entries 1000000] [--changes 20] [--small-changes 10]
                                        [--database-url postgres://...] [--hub-processes 2]
                                        [--idle-s 10] [--json FILE] [--work-dir DIR]

The set-up is `make demo`'s: a `bulwark hub serve` process (SQLite in a temporary
directory, or PostgreSQL with --database-url, several processes with --hub-processes),
two `bulwark agent run` processes enrolled with join tokens, each protecting a veth in a
namespace of its own, examples/web.bw deployed with its deny list. Packets come from a
generator namespace (packet sockets); a packet socket on each protected interface sees
only what XDP passed.

1. Peer, from the same run: `--small-changes` one-entry additions while the list is small.
2. The list is imported through the public API (`POST .../lists/{id}/import`, hosts one a
   line as a user's file has them). Import to enforced: from the call until neither site
   sees the list's last address any more.
3. `--changes` one-entry additions (`POST .../lists/{id}/entries`, alternately `a.b.c.d` and
   `a.b.c.d/32`, the two forms users send), each timed from the call to the last packet of
   that source seen on either site. p50 / p99.
   Meanwhile /healthz is asked in a loop: its slowest answer is how long the import held
   the hub's event loop.
4. Idle agents with the list (RSS, CPU over --idle-s) and the hub's RSS and peak.
Needs root. The machine is shared and noisy: read the medians beside their peers.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from demo.agents import AgentProcess  # noqa: E402
from demo.hub import HubProcess, open_tenant  # noqa: E402
from demo.policy import DENY_LIST, web_policy  # noqa: E402
from demo.processes import free_port  # noqa: E402
from demo.probe import enforced_after, probe, timed_change, wait_seen  # noqa: E402
from demo.topology import Topology  # noqa: E402
from demo.traffic import Receiver  # noqa: E402

EMAIL, PASSWORD = "bench@example.com", "correct horse battery staple"
PROBE_PPS = 1000        # per probed source and site: 1 ms resolution on the timings
ENFORCE_TIMEOUT_S = 60


def hosts(count: int) -> bytes:
    """`count` distinct IPv4 hosts, one a line, from 100.64.0.0 on (as a user's file has them)."""
    base = (100 << 24) + (64 << 16)
    return "\n".join(f"{a >> 24 & 255}.{a >> 16 & 255}.{a >> 8 & 255}.{a & 255}"
                     for a in range(base, base + count)).encode()


def last_host(count: int) -> str:
    a = (100 << 24) + (64 << 16) + count - 1
    return f"{a >> 24 & 255}.{a >> 16 & 255}.{a >> 8 & 255}.{a & 255}"


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_mem_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def hub_pids(hub: HubProcess) -> list[int]:
    """The serving process and, with --hub-processes, the workers it forked."""
    pids = [hub.proc.pid]
    children = Path(f"/proc/{hub.proc.pid}/task/{hub.proc.pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    return pids


class Pinger:
    """GET /healthz in a loop from a thread while the import runs: its slowest answer is
    how long the hub's event loop was held (with 2 hub processes, the one that answered)."""

    def __init__(self, url: str) -> None:
        import threading

        import httpx
        self.client = httpx.Client(base_url=url, timeout=60)
        self.latencies: list[float] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.done.is_set():
            t0 = time.monotonic()
            self.client.get("/healthz")
            self.latencies.append(time.monotonic() - t0)
            self.done.wait(0.02)

    def __enter__(self) -> "Pinger":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()
        self.client.close()


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(args: argparse.Namespace, work: Path) -> dict:
    topo = Topology.create(f"bwx{os.getpid() % 100000}", sites=2)
    port = free_port()
    # Room for the changes timed on top of the imported list (the hub's default cap is 1M).
    settings = {"list_max_entries": args.entries + args.small_changes + args.changes + 10}
    if args.database_url:
        settings["database_url"] = args.database_url
    hub = HubProcess(url=f"http://127.0.0.1:{port}", data_dir=work / "hub", bind=f"127.0.0.1:{port}",
                     log=work / "hub.log", settings=settings, workers=args.hub_processes)
    agents: list[AgentProcess] = []
    receivers: list[Receiver] = []
    api = None
    try:
        otpauth = hub.create_admin(EMAIL, PASSWORD, totp=True)  # every account needs 2FA
        hub.start()
        api = open_tenant(hub.url, EMAIL, PASSWORD, otpauth)
        list_id = api.create_list(DENY_LIST, "deny", ["203.0.113.66"])
        for site in topo.sites:
            agent = AgentProcess(f"a{site.index}", site, topo.pin_root, work, free_port())
            agent.write_config()
            agent.enroll(hub.url, api.join_token())
            agent.start()
            agents.append(agent)
        policy = api.create_policy("web", web_policy())
        digest = api.deploy(policy["id"], [a.agent_id for a in agents])["digest"]
        for agent in agents:
            agent.wait_for("the policy applied", lambda st: st.get("applied_digest") == digest, 60)
        receivers = [Receiver(site) for site in topo.sites]
        for r in receivers:
            r.start()

        def change(i: int) -> float:
            source = f"198.51.{100 + i // 250}.{1 + i % 250}"
            form = source if i % 2 else f"{source}/32"
            return timed_change(topo.gen_ns, topo.sites, receivers, source, lambda: api.change_list(list_id, add=[form]),
                                pps=PROBE_PPS, timeout_s=ENFORCE_TIMEOUT_S)

        small = [change(i) for i in range(args.small_changes)]
        print(f"small list, one-entry change to enforced: p50 {statistics.median(small) * 1e3:.1f} ms", flush=True)

        probe_src = last_host(args.entries)
        sender = probe(topo.gen_ns, topo.sites, probe_src, PROBE_PPS, ENFORCE_TIMEOUT_S + 10)
        try:
            wait_seen(receivers, probe_src)
            body = hosts(args.entries)
            with Pinger(hub.url) as pinger:
                t0 = time.monotonic()
                api._call("POST", f"/lists/{list_id}/import", content=body,
                          headers={"Content-Type": "text/plain"}, timeout=600)
                imported_s = time.monotonic() - t0
            import_to_enforced_s = enforced_after(receivers, probe_src, t0, ENFORCE_TIMEOUT_S)
        finally:
            sender.stop()
        healthz_max_ms = max(pinger.latencies) * 1e3
        print(f"import {imported_s:.1f} s, import to enforced on both agents {import_to_enforced_s:.1f} s, "
              f"slowest /healthz during the import {healthz_max_ms:.0f} ms", flush=True)

        big = [change(args.small_changes + i) for i in range(args.changes)]
        print(f"{args.entries:,}-entry list, one-entry change to enforced: p50 {statistics.median(big) * 1e3:.1f} ms, "
              f"p99 {quantile(big, 0.99) * 1e3:.1f} ms", flush=True)

        time.sleep(2)  # let the last change's work settle before the idle window
        pids = [a.proc.pid for a in agents]
        cpu0, w0 = [proc_cpu_s(p) for p in pids], time.monotonic()
        time.sleep(args.idle_s)
        wall = time.monotonic() - w0
        idle_cpu = [100 * (proc_cpu_s(p) - c) / wall for p, c in zip(pids, cpu0)]
        hub_procs = hub_pids(hub)
        return {
            "entries": args.entries,
            "hub_processes": args.hub_processes,
            "database": "postgresql" if args.database_url else "sqlite",
            "small_change_p50_ms": statistics.median(small) * 1e3,
            "small_change_p99_ms": quantile(small, 0.99) * 1e3,
            "change_p50_ms": statistics.median(big) * 1e3,
            "change_p99_ms": quantile(big, 0.99) * 1e3,
            "changes_ms": [round(x * 1e3, 2) for x in big],
            "import_s": imported_s,
            "import_to_enforced_s": import_to_enforced_s,
            "healthz_max_during_import_ms": healthz_max_ms,
            "agent_idle_rss_mb": max(proc_mem_mb(p, "VmRSS") for p in pids),
            "agent_peak_rss_mb": max(proc_mem_mb(p, "VmHWM") for p in pids),
            "agent_idle_cpu_percent": max(idle_cpu),
            "hub_rss_mb": sum(proc_mem_mb(p, "VmRSS") for p in hub_procs),
            "hub_peak_rss_mb": max(proc_mem_mb(p, "VmHWM") for p in hub_procs),
        }
    finally:
        for r in receivers:
            r.stop()
        for agent in agents:
            agent.stop()
        hub.stop()
        if api is not None:
            api.close()
        topo.remove()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--entries", type=int, default=1_000_000, help="hosts imported into the deny list")
    p.add_argument("--changes", type=int, default=20, help="one-entry changes timed with the big list")
    p.add_argument("--small-changes", type=int, default=10, help="the same with the small list (the peer)")
    p.add_argument("--database-url", default="", help="postgres://... (default: SQLite in a temporary directory)")
    p.add_argument("--hub-processes", type=int, default=1, help="hub processes (PostgreSQL only)")
    p.add_argument("--idle-s", type=float, default=10, help="how long idle agents are watched")
    p.add_argument("--json", default="", metavar="FILE", help="write the figures there (bench/report.py reads them)")
    p.add_argument("--work-dir", default="", metavar="DIR", help="keep the logs and state there (default: removed)")
    args = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("e2e_scale: needs root (namespaces, XDP)")
    if args.work_dir:
        Path(args.work_dir).mkdir(parents=True, exist_ok=True)
        figures = run(args, Path(args.work_dir))
    else:
        with tempfile.TemporaryDirectory(prefix="bulwark-e2e-scale-") as tmp:
            figures = run(args, Path(tmp))
    print(json.dumps({k: v for k, v in figures.items() if k != "changes_ms"}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(figures))


if __name__ == "__main__":
    main()

"""Guard benchmarks: per-packet cost, map loading, one-entry changes, each beside a peer.

    .venv/bin/python bench/guard.py [--runs 5] [--repeat 1000000] [--json FILE]

1. ns/packet (BPF_PROG_TEST_RUN): an empty Plan; a realistic Plan (20 rules, 1,000,000
   IPv4 deny hosts + 10,000 IPv4 deny prefixes, 100,000 IPv6 entries, an allow list, two
   rate limits) on a passed, a denied and a rate-limited packet; xdp-tools' xdp-filter
   (`xdpfilt_dny_ip.o`, 1,000,000 denied addresses) on the same packets; deny lists of
   1,000 vs 1,000,000 entries; 20 vs 1,000 rules the packet does not match.
2. seconds to load 1,000,000 deny entries, each run a snapshot neither generation holds:
   the agent's own path for a new snapshot (the hub's list document, its entries in the
   packed wire form -> `DesiredTracker.update` -> `Dataplane.apply_maps` on real pinned
   maps: decode, spec, host table, flip), split into its parts, and the guard from text;
   vs `nft -f` of the same addresses into a set (in a throwaway network namespace).
3. time to apply a one-entry change to a 1,000,000-entry list, and ns/packet once such
   changes sit in the delta hash over the table.

Figures are medians of --runs runs; the machine is shared, so read the ratios.
Needs root and the built native parts (make native).
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from ipaddress import ip_address
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.config import AgentConfig  # noqa: E402
from agent.dataplane import Dataplane  # noqa: E402
from agent.hub_link import DesiredTracker  # noqa: E402
from agent.state import StateStore  # noqa: E402
from bpf import Object, host_table  # noqa: E402
from bpf.guard import Guard  # noqa: E402
from bpf.guard_plan import spec_from_plan  # noqa: E402
from bpf.maps import possible_cpus  # noqa: E402
from rules_dsl import build_frame, compile, parse  # noqa: E402
from rules_dsl.addresses import Packed, to_wire  # noqa: E402
from rules_dsl.packet import Packet  # noqa: E402

XDP_FILTER = Path("/usr/lib/x86_64-linux-gnu/bpf/xdpfilt_dny_ip.o")
MAP_FLAG_SRC = 1  # xdp-filter's "match source address" flag

REALISTIC = """
policy "bench-realistic"
default drop
set allow { list "allow" }
set deny { list "deny4", list "deny4-nets", list "deny6" }
set office { 198.51.100.0/24, 2001:db8:100::/48 }
set web { 80, 443 }
set reflectors { 19, 53, 123, 389, 1900, 11211 }
pass from @allow
drop from @deny
drop tcp flags { null, xmas, syn|fin/syn|fin, syn|rst/syn|rst }
drop fragment
drop ttl < 2
pass tcp from @office dport 22
drop tcp dport 22
drop udp sport @reflectors
pass udp dport 27015-27030 limit 200/second burst 400 per src
pass udp dport 53 limit 1000/second burst 2000 per src ipv6/64
pass tcp flags ack/syn|ack
drop tcp dport { 23, 445, 3389 }
drop udp dport { 137-139, 161 }
pass tcp dport 25
pass tcp dport 8080-8090 from @office
pass icmp type echo-request
pass icmpv6 type { echo-request, nd-neighbor-solicit, nd-neighbor-advert }
drop icmp
drop proto 47
pass tcp dport @web flags syn/syn|ack
"""


def hosts_v4(count: int, base: int = 0x0A000000) -> list[str]:
    return [f"{(a >> 24) & 255}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}"
            for a in range(base, base + count)]


def realistic_lists(deny_hosts: int) -> dict[str, list[str]]:
    return {
        "deny4": hosts_v4(deny_hosts),
        "deny4-nets": [f"{100 + i // 256 % 100}.{i % 256}.{(i // 25600) * 16}.0/20" for i in range(10_000)],
        "deny6": [f"2001:db8:{i >> 16:x}:{i & 0xffff:x}::1" for i in range(50_000)]
                 + [f"2001:db8:{0x8000 + (i >> 16):x}:{i & 0xffff:x}::/64" for i in range(50_000)],
        "allow": hosts_v4(1000, base=0xC0000200 - 0x100),
    }


def packet(src: str, proto: int, dport: int, flags: int | None = 0x02) -> bytes:
    return build_frame(Packet(l3="ipv4", src=ip_address(src), dst=ip_address("192.0.2.1"), proto=proto,
                              sport=40000, dport=dport, tcp_flags=flags if proto == 6 else None, ttl=64))


PASSED = packet("192.0.2.10", 6, 443)  # meets the last rule
DENIED = packet("10.0.1.2", 6, 443)  # in the million-host deny list
LIMITED = packet("192.0.2.10", 17, 27015, None)  # over its rate after the burst


def ns_per_packet(program, frame: bytes, repeat: int, runs: int) -> float:
    return statistics.median(program.test_run(frame, repeat=repeat).duration_ns for _ in range(runs))


def xdp_filter_peer(entries: list[str]):
    obj = Object(XDP_FILTER)
    obj.disable_pinning()
    obj.set_max_entries("filter_ipv4", len(entries) + 16)
    obj.load()
    table = obj.map("filter_ipv4")
    flags = MAP_FLAG_SRC.to_bytes(8, "little") * possible_cpus()
    keys = b"".join(ip_address(e).packed for e in entries)
    table.update_batch(keys, flags * len(entries))
    return obj


def nft_load_seconds(entries: list[str]) -> float:
    """`nft -f` of a set holding the entries, in a namespace made and removed here."""
    ns = f"bwbench{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".nft", delete=False) as f:
            f.write("table inet bench {\n set deny {\n  type ipv4_addr\n  size 2000000\n  elements = {\n")
            f.write(",\n".join(entries))
            f.write("\n  }\n }\n}\n")
        start = time.perf_counter()
        subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", f.name], check=True)
        return time.perf_counter() - start
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
        os.unlink(f.name)


SNAPSHOT_BASE = 0x0A000000  # snapshot rev holds 1,000,000 hosts from SNAPSHOT_BASE + 3 * rev
FIRST_TIMED = 2  # revisions 0 and 1 fill both generations first


def snapshot_doc(plan, revision: int, hosts: list[str]) -> dict:
    """The hub's desired-state document for a whole new snapshot of the deny list (the
    agent protocol's shape, docs/agent-protocol.md), as hub_link hands it on after the
    JSON parse."""
    return {"etag": f"e{revision}", "mode": "enforce", "plan": json.loads(plan.to_json()),
            "lists": [{"id": "deny4", "name": "deny4", "revision": revision, "mode": "snapshot",
                       "entries": to_wire(Packed(hosts))}]}


def agent_snapshot_loads(plan, runs: int) -> dict[str, float]:
    """Seconds from a new 1,000,000-entry snapshot document to the flip, on the agent's
    path (DesiredTracker.update, then Dataplane.apply_maps on pinned maps), and the host
    table's share of it (host_table.build)."""
    with tempfile.TemporaryDirectory() as state:
        cfg = AgentConfig(name=f"bench-{os.getpid()}", pin_root="/sys/fs/bpf/bulwark-bench",
                          state_root=state, http_port=0)
        dp = Dataplane(cfg, StateStore(cfg.state_dir))
        tracker = DesiredTracker(None)
        build = host_table.build
        builds: list[float] = []

        def timed_build(*a, **kw):
            start = time.perf_counter()
            try:
                return build(*a, **kw)
            finally:
                builds.append(time.perf_counter() - start)
        host_table.build = timed_build
        try:
            docs = [snapshot_doc(plan, rev, hosts_v4(1_000_000, base=SNAPSHOT_BASE + rev * 3))
                    for rev in range(FIRST_TIMED)]
            for doc in docs:  # both generations hold a snapshot, as on a running agent
                dp.apply_maps(tracker.update(doc))
            loads, parts = [], []
            for rev in range(FIRST_TIMED, FIRST_TIMED + runs):
                doc = snapshot_doc(plan, rev, hosts_v4(1_000_000, base=SNAPSHOT_BASE + rev * 3))
                builds.clear()
                start = time.perf_counter()
                dp.apply_maps(tracker.update(doc))
                loads.append(time.perf_counter() - start)
                parts.append(sum(builds))
        finally:
            host_table.build = build
            dp.close()
            for pin in sorted(cfg.pin_dir.glob("*")):
                pin.unlink()
            cfg.pin_dir.rmdir()
            if not any(Path(cfg.pin_root).iterdir()):
                Path(cfg.pin_root).rmdir()
    return {"guard_load_1m_packed_s": statistics.median(loads), "host_table_build_1m_s": statistics.median(parts)}


def rules_plan(count: int):
    lines = ['policy "rules"', "default pass", "set office { 198.51.100.0/24 }"]
    lines += [f"drop tcp from @office dport {1000 + i}" if i % 2 else f"drop udp dport {1000 + i} ttl < 9"
              for i in range(count)]
    return compile(parse("\n".join(lines)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=1_000_000)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    r, n = args.runs, args.repeat
    out: dict[str, float] = {}
    plan = compile(parse(REALISTIC))
    lists = realistic_lists(1_000_000)
    with Guard() as guard:
        prog = guard.program
        guard.apply(spec_from_plan(compile(parse('policy "empty"\ndefault pass'))))
        out["empty_plan_ns"] = ns_per_packet(prog, PASSED, n, r)

        spec = spec_from_plan(plan, lists)
        guard.apply(spec)
        out["realistic_passed_ns"] = ns_per_packet(prog, PASSED, n, r)
        out["realistic_denied_ns"] = ns_per_packet(prog, DENIED, n, r)
        out["realistic_limited_ns"] = ns_per_packet(prog, LIMITED, n, r)

        small = spec_from_plan(plan, realistic_lists(1_000))
        guard.apply(small)
        out["deny_1k_passed_ns"] = ns_per_packet(prog, PASSED, n, r)
        out["deny_1k_denied_ns"] = ns_per_packet(prog, packet("10.0.0.2", 6, 443), n, r)
        guard.apply(spec)
        out["deny_1m_passed_ns"] = out["realistic_passed_ns"]
        out["deny_1m_denied_ns"] = out["realistic_denied_ns"]

        miss = packet("192.0.2.10", 6, 80)
        guard.apply(spec_from_plan(rules_plan(20)))
        out["rules_20_ns"] = ns_per_packet(prog, miss, n, r)
        guard.apply(spec_from_plan(rules_plan(1000)))
        out["rules_1000_ns"] = ns_per_packet(prog, miss, n, r)

        # 2. from text: a new million each run (a list the guard already holds is kept, not loaded)
        loads = []
        for run in range(r):
            text = hosts_v4(1_000_000, base=0x0B000000 + run)
            start = time.perf_counter()
            guard.apply(spec_from_plan(plan, {"deny4": text}))
            loads.append(time.perf_counter() - start)
        out["guard_load_1m_s"] = statistics.median(loads)
        guard.apply(spec)

        # 3. one entry added to and removed from the million-entry list, live
        changes = []
        for i in range(200):
            addr = f"172.16.{i // 256}.{i % 256}"
            start = time.perf_counter()
            guard.update_set(1, added=[addr])
            changes.append(time.perf_counter() - start)
        out["one_entry_change_ms"] = statistics.median(changes) * 1000
        # per packet once deltas sit over the table: a host the table holds (its filter bit
        # may or may not be set) and a host only a delta holds (filter, delta hash)
        out["realistic_denied_deltas_ns"] = ns_per_packet(prog, DENIED, n, r)
        out["delta_denied_ns"] = ns_per_packet(prog, packet("172.16.0.5", 6, 443), n, r)

    out.update(agent_snapshot_loads(plan, r))

    with xdp_filter_peer(lists["deny4"]) as peer:
        fprog = peer.program("xdpfilt_dny_ip")
        out["xdp_filter_passed_ns"] = ns_per_packet(fprog, PASSED, n, r)
        out["xdp_filter_denied_ns"] = ns_per_packet(fprog, DENIED, n, r)
    first = hosts_v4(1_000_000, base=SNAPSHOT_BASE + FIRST_TIMED * 3)  # the first snapshot the agent loaded, timed
    out["nft_load_1m_s"] = statistics.median(nft_load_seconds(first) for _ in range(min(r, 3)))

    report(out)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, sort_keys=True))
    return 0


def report(o: dict[str, float]) -> None:
    peer = max(o["xdp_filter_passed_ns"], o["xdp_filter_denied_ns"])
    rows = [
        ("empty Plan, passed packet", f"{o['empty_plan_ns']:.0f} ns", ""),
        ("realistic Plan, passed", f"{o['realistic_passed_ns']:.0f} ns",
         f"xdp-filter {o['xdp_filter_passed_ns']:.0f} ns: {o['realistic_passed_ns'] / o['xdp_filter_passed_ns']:.2f}x (target <= 2x)"),
        ("realistic Plan, denied", f"{o['realistic_denied_ns']:.0f} ns",
         f"xdp-filter {o['xdp_filter_denied_ns']:.0f} ns: {o['realistic_denied_ns'] / o['xdp_filter_denied_ns']:.2f}x (target <= 2x)"),
        ("realistic Plan, rate-limited", f"{o['realistic_limited_ns']:.0f} ns",
         f"xdp-filter worst {peer:.0f} ns: {o['realistic_limited_ns'] / peer:.2f}x"),
        ("deny 1k -> 1M entries, passed", f"{o['deny_1k_passed_ns']:.0f} -> {o['deny_1m_passed_ns']:.0f} ns",
         f"growth {o['deny_1m_passed_ns'] / o['deny_1k_passed_ns']:.2f}x (target < 1.5x)"),
        ("deny 1k -> 1M entries, denied", f"{o['deny_1k_denied_ns']:.0f} -> {o['deny_1m_denied_ns']:.0f} ns",
         f"growth {o['deny_1m_denied_ns'] / o['deny_1k_denied_ns']:.2f}x (target < 1.5x)"),
        ("20 -> 1,000 rules, no match", f"{o['rules_20_ns']:.0f} -> {o['rules_1000_ns']:.0f} ns",
         f"{o['rules_1000_ns'] / o['rules_20_ns']:.2f}x (target <= 2x; XDP-Firewall, quoted: 399 ns at 20, 1,511 at 100)"),
        ("load 1M deny entries (agent: snapshot doc -> flip)", f"{o['guard_load_1m_packed_s']:.3f} s",
         f"nft -f {o['nft_load_1m_s']:.2f} s: {o['nft_load_1m_s'] / o['guard_load_1m_packed_s']:.1f}x faster (target <= 0.25 s, >= 10x)"),
        ("  of which the host table", f"{o['host_table_build_1m_s']:.3f} s", "laid out in the mmapped array"),
        ("load 1M deny entries (from text)", f"{o['guard_load_1m_s']:.2f} s",
         f"{o['nft_load_1m_s'] / o['guard_load_1m_s']:.1f}x faster than nft"),
        ("one-entry change, 1M list", f"{o['one_entry_change_ms']:.3f} ms", "target < 1 ms"),
        ("realistic Plan, denied, 200 deltas live", f"{o['realistic_denied_deltas_ns']:.0f} ns",
         f"xdp-filter {o['xdp_filter_denied_ns']:.0f} ns: {o['realistic_denied_deltas_ns'] / o['xdp_filter_denied_ns']:.2f}x"),
        ("host added by a delta, denied", f"{o['delta_denied_ns']:.0f} ns",
         f"xdp-filter {o['xdp_filter_denied_ns']:.0f} ns: {o['delta_denied_ns'] / o['xdp_filter_denied_ns']:.2f}x"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value, peer_note in rows:
        print(f"{name:<{width}}  {value:>16}  {peer_note}")


if __name__ == "__main__":
    sys.exit(main())

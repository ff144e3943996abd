"""The agent's lockout guard on a hub Plan, with a 1,000,000-entry list (issue 11 item 3).

    .venv/bin/python bench/lockout.py [--entries 1000000] [--repeat 21] [--json FILE]

Times `agent.lockout.check_plan` (the nft allowlist, then rules_dsl.judge_lockout on both
stages with the live lists) as the reconciler calls it for every hub Plan: the list in
the shape the hub sends (hosts as `a.b.c.d/32`, plus a few prefixes), a hub address and
two admin prefixes (one IPv4, one IPv6). Target: ≤ 5 ms. Pure CPU, no root. Reports the
median and the worst of --repeat runs, each on a Plan fresh from JSON (as from the hub:
the evaluator's and the guard's per-Plan caches built inside the timing).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.config import AgentConfig  # noqa: E402
from agent.entries import Entries  # noqa: E402
from agent.lockout import check_plan  # noqa: E402
from rules_dsl import Plan, load  # noqa: E402

POLICY = """policy "bench"
default drop
set bans { 192.0.2.0/24, list "ban" }
set admins { 198.51.100.0/24, 2001:db8:2::/48 }
pass tcp from @admins dport 22
drop from @bans
pass tcp flags ack/ack
pass udp dport 53
pass tcp dport { 80, 443 } limit 500/second burst 1000 per src
stateful {
    pass ct state established,related
    drop ct state invalid
    drop tcp dport 22 rate over 10/minute burst 5 per src
    synproxy tcp dport 443 mss 1460 wscale 7 timestamp sack-perm
}
"""


def hub_shaped(n: int) -> Entries:
    """n IPv4 hosts as the hub sends them (`/32`), and a few prefixes."""
    base = 0x0A000000
    hosts = (f"{(a >> 24) & 255}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}/32"
             for a in range(base, base + n))
    return Entries([*hosts, "172.16.0.0/12", "2001:db8:ff::/48"])


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--entries", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=21)
    p.add_argument("--json")
    args = p.parse_args()
    checked = load(POLICY, "bench.bw")
    assert checked.plan is not None, [d.render() for d in checked.diagnostics]
    config = AgentConfig(hub_address="203.0.113.5", hub_port=443,
                         admin_prefixes=("198.51.100.0/24", "2001:db8:2::/48"))
    lists = {"ban": hub_shaped(args.entries)}
    runs = []
    for _ in range(args.repeat):
        plan = Plan.from_json(checked.plan.to_json())   # as from the hub: no caches yet
        t0 = time.perf_counter()
        check_plan(plan, lists, config)
        runs.append((time.perf_counter() - t0) * 1000)
    out = {"entries": args.entries, "median_ms": round(statistics.median(runs), 2),
           "p90_ms": round(sorted(runs)[int(0.9 * (len(runs) - 1))], 2),
           "worst_ms": round(max(runs), 2), "target_ms": 5}
    print(json.dumps(out))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

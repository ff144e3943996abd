"""Child process for the kill -9 test: apply Plan A, B, A, B ... as the agent does
(`standalone.install`: maps, program, table, persisted state), printing "started" before
the first one and "ready" after it, until killed. GAP_S (default 0) waits that long before each table
replacement, widening the moment when XDP holds the new Plan and the table the old one
so that kills land there too.

    python -m tests.agent.apply_loop NAME IFACE NETNS PIN_ROOT STATE_ROOT PLAN_A.json PLAN_B.json [GAP_S]
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from agent.config import AgentConfig
from agent.dataplane import Dataplane
from agent.standalone import install
from agent.state import Desired, StateStore
from rules_dsl import Plan


def main(argv: list[str]) -> None:
    name, iface, netns, pin_root, state_root, a, b, *rest = argv
    gap_s = float(rest[0]) if rest else 0.0
    cfg = AgentConfig(name=name, iface=iface, netns=netns, pin_root=pin_root, state_root=state_root,
                      xdp_mode="native", http_port=0)
    plans = [Plan.from_json(Path(p).read_text()) for p in (a, b)]
    store = StateStore(cfg.state_dir)
    current = store.load()
    start = 1 if current is not None and current.digest == plans[0].digest else 0
    dp = Dataplane(cfg, store)
    apply_nft = dp.apply_nft

    def apply_nft_late(desired, **kw):
        time.sleep(gap_s)
        return apply_nft(desired, **kw)
    dp.apply_nft = apply_nft_late
    i = start
    print("started", flush=True)  # the test times its kill from here, not from a loaded exec
    while True:
        install(dp, Desired(mode="enforce", plan=plans[i % 2]))
        if i == start:
            print("ready", flush=True)
        i += 1


if __name__ == "__main__":
    main(sys.argv[1:])

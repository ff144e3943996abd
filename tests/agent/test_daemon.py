"""The daemon on a real veth pair: fail static across a graceful stop and a restart,
drift repaired by the watchdog, deactivate and reactivate."""
from __future__ import annotations

import ctypes

import pytest
import trio

from agent.daemon import build, run_agent
from agent.state import Desired, ListState
from bpf import Link, Map, in_netns
from rules_dsl import load
from tests.agent.conftest import (POLICY_A, POLICY_B, VERDICT_A, VERDICT_B, guard_verdicts, nft_counter,
                                  nft_rule_ports, nft_table, tcp_connects, udp_delivered)

pytestmark = pytest.mark.kernel

PLAN_A = load(POLICY_A, "a.bw").plan
PLAN_B = load(POLICY_B, "b.bw").plan


async def until(predicate, timeout_s=30.0, step_s=0.05):
    """Wait (in real time) until predicate() holds in a worker thread; returns the seconds it took.
    The bound is a guard against a hang, generous for a loaded machine, not a timing."""
    start = trio.current_time()
    with trio.fail_after(timeout_s):
        while not await trio.to_thread.run_sync(predicate):
            await trio.sleep(step_s)
    return trio.current_time() - start


def attached(lab, pin) -> bool:
    from bpf import xdp_query
    with in_netns(lab.ns):
        return xdp_query(lab.iface).mode is not None


async def test_fail_static_across_stop_and_restart(veth_lab, pin_dir, make_config):
    cfg = make_config(veth_lab, pin_dir)
    pin = cfg.pin_dir
    agent = build(cfg)
    async with trio.open_nursery() as nursery:
        await nursery.start(run_agent, agent)
        await agent.to_reconciler.send(Desired(mode="enforce", plan=PLAN_A))
        await until(lambda: guard_verdicts(pin) == VERDICT_A and nft_rule_ports(veth_lab.ns) == {23})
        nursery.cancel_scope.cancel()  # graceful stop
    agent.dataplane.close()
    assert guard_verdicts(pin) == VERDICT_A and attached(veth_lab, pin)  # nothing running, still enforced
    # a restarted agent with no hub and no policy re-applies what it had
    agent = build(cfg)
    async with trio.open_nursery() as nursery:
        await nursery.start(run_agent, agent)
        await until(lambda: agent.dataplane.maps_desired is not None)
        assert agent.dataplane.maps_desired.digest == PLAN_A.digest
        assert guard_verdicts(pin) == VERDICT_A and nft_rule_ports(veth_lab.ns) == {23}
        # and it can move on from there (its guard caches were rebuilt by the re-apply)
        await agent.to_reconciler.send(Desired(mode="enforce", plan=PLAN_B,
                                               lists=()))
        await until(lambda: guard_verdicts(pin) == VERDICT_B and nft_rule_ports(veth_lab.ns) == {24})
        nursery.cancel_scope.cancel()
    agent.dataplane.close()


async def test_watchdog_repairs_drift(veth_lab, pin_dir, make_config):
    cfg = make_config(veth_lab, pin_dir, watchdog_interval_s=0.5)
    pin = cfg.pin_dir
    agent = build(cfg)
    async with trio.open_nursery() as nursery:
        await nursery.start(run_agent, agent)
        await agent.to_reconciler.send(Desired(mode="enforce", plan=PLAN_A))
        await until(lambda: guard_verdicts(pin) == VERDICT_A and nft_rule_ports(veth_lab.ns) == {23})

        def detach_by_hand():
            with in_netns(veth_lab.ns):
                Link.open_pinned(pin / "link").detach()
        # Each repair is counted, not timed: the suite runs on loaded parallel workers, so the
        # bound is generous and the counter says it was the watchdog's drift report that repaired.
        repairs = agent.telemetry.repairs
        await trio.to_thread.run_sync(detach_by_hand)
        assert not attached(veth_lab, pin)
        await until(lambda: attached(veth_lab, pin), timeout_s=30)
        assert agent.telemetry.repairs > repairs
        await trio.sleep(0.5)  # let that repair finish its way through the pipeline

        def flush_by_hand():
            from bpf import Nft
            with in_netns(veth_lab.ns):
                nft = Nft()
            nft.run("flush table inet bulwark")
            nft.close()
        repairs = agent.telemetry.repairs
        await trio.to_thread.run_sync(flush_by_hand)
        assert nft_rule_ports(veth_lab.ns) == set()
        await until(lambda: nft_rule_ports(veth_lab.ns) == {23}, timeout_s=30)
        assert agent.telemetry.repairs > repairs
        await trio.sleep(0.5)

        def empty_maps_by_hand():
            from bpf.guard import GuardState
            with Map.open_pinned(pin / "g_state", key_type=ctypes.c_uint32, value_type=GuardState) as st:
                gen = st[0].gen & 1
            for name in ("g_v4_table", "g_v4_nets", "g_v6_table", "g_v6_nets"):
                with Map.open_pinned(pin / name, key_type=ctypes.c_uint32) as outer:
                    outer.delete(gen)
        repairs = agent.telemetry.repairs
        await trio.to_thread.run_sync(empty_maps_by_hand)
        await until(lambda: guard_verdicts(pin) == VERDICT_A, timeout_s=30)
        assert agent.telemetry.repairs > repairs
        assert agent.telemetry.repairs >= 3
        nursery.cancel_scope.cancel()
    agent.dataplane.close()


async def test_deactivate_and_reactivate(veth_lab, pin_dir, make_config):
    cfg = make_config(veth_lab, pin_dir)
    pin = cfg.pin_dir
    agent = build(cfg)
    async with trio.open_nursery() as nursery:
        await nursery.start(run_agent, agent)
        await agent.to_reconciler.send(Desired(mode="enforce", plan=PLAN_A))
        await until(lambda: guard_verdicts(pin) == VERDICT_A and attached(veth_lab, pin))
        await until(lambda: agent.telemetry.xdp_mode == "native")  # what `status` shows
        await agent.to_reconciler.send(Desired(mode="deactivate", plan=PLAN_A))
        await until(lambda: not attached(veth_lab, pin) and nft_table(veth_lab.ns) is None)
        await trio.sleep(1)  # the watchdog does not call that drift
        assert not attached(veth_lab, pin) and agent.telemetry.mode == "deactivate"
        assert agent.telemetry.xdp_mode is None
        await agent.to_reconciler.send(Desired(mode="enforce", plan=PLAN_A))
        await until(lambda: attached(veth_lab, pin) and nft_rule_ports(veth_lab.ns) == {23}
                    and guard_verdicts(pin) == VERDICT_A)
        nursery.cancel_scope.cancel()
    agent.dataplane.close()


async def test_monitor_mode_installs_a_table_that_counts_and_drops_nothing(veth_lab, pin_dir, make_config):
    lab = veth_lab
    agent = build(make_config(lab, pin_dir))
    rule = "drop tcp dport 23"  # PLAN_A's stateful drop, which enforce mode applies
    async with trio.open_nursery() as nursery:
        await nursery.start(run_agent, agent)
        await agent.to_reconciler.send(Desired(mode="monitor", plan=PLAN_A))
        await until(lambda: nft_rule_ports(lab.ns) == {23} and attached(lab, agent.config.pin_dir))
        assert nft_counter(lab.ns, rule) == 0
        assert await trio.to_thread.run_sync(tcp_connects, lab, 23)  # passes nftables ...
        assert nft_counter(lab.ns, rule) > 0  # ... and is counted there
        assert await trio.to_thread.run_sync(udp_delivered, lab, lab.peer_addr, 9999, 5) == 5  # XDP too
        await trio.sleep(1)  # the watchdog takes the monitor table as ours
        assert agent.telemetry.repairs == 0
        await agent.to_reconciler.send(Desired(mode="enforce", plan=PLAN_A))
        await until(lambda: guard_verdicts(agent.config.pin_dir) == VERDICT_A)
        await until(lambda: not tcp_connects(lab, 23), 10)
        nursery.cancel_scope.cancel()
    agent.dataplane.close()


async def test_list_delta_keeps_the_table_and_its_state(veth_lab, pin_dir, make_config):
    lab = veth_lab
    lab.add_peer_address("203.0.113.9")
    agent = build(make_config(lab, pin_dir))
    rule = "drop tcp dport 24"
    async with trio.open_nursery() as nursery:
        await nursery.start(run_agent, agent)
        await agent.to_reconciler.send(Desired(mode="enforce", plan=PLAN_B, lists=(ListState("ban", 1, ()),)))
        await until(lambda: nft_rule_ports(lab.ns) == {24})
        assert not await trio.to_thread.run_sync(tcp_connects, lab, 24)
        counted = nft_counter(lab.ns, rule)
        assert counted > 0
        await agent.to_reconciler.send(Desired(mode="enforce", plan=PLAN_B, lists=(
            ListState("ban", 2, {"203.0.113.9"}),), deltas=(("ban", ("203.0.113.9",), ()),)))
        await until(lambda: udp_delivered(lab, "203.0.113.9", 5000, 5) == 0)
        assert nft_counter(lab.ns, rule) == counted  # the same table: not replaced, counters kept
        nursery.cancel_scope.cancel()
    agent.dataplane.close()

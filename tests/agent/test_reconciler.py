"""The reconciler through its channels, with a fake pipeline and an autojump clock:
fail-static re-apply at start, confirm-or-revert, the lockout guard, failures."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import threading

import pytest
import trio

from agent import reconciler
from agent.config import AgentConfig
from agent.messages import Apply, Confirmed, Drift, Report, Result
from agent.state import Desired, ListState, StateStore
from agent.telemetry import Telemetry
from rules_dsl import load
from tests.agent import signing
from tests.agent.conftest import POLICY_A, POLICY_B

PLAN_A = load(POLICY_A, "a.bw").plan
PLAN_B = load(POLICY_B, "b.bw").plan
LOCKOUT = load('policy "x"\ndefault drop\npass udp dport 53\n', "x.bw").plan


async def inline(fn, *args):
    """Runs the guard on the loop: virtual time must not move while it runs."""
    return fn(*args)


class Harness:
    def __init__(self, tmp_path, fail=lambda apply: None, off_loop=inline, **cfg):
        self.off_loop = off_loop
        self.config = AgentConfig(state_root=str(tmp_path), confirm_window_s=60, **cfg)
        signing.pin(self.config)
        self.store = StateStore(self.config.state_dir)
        self.tele = Telemetry()
        self.in_tx, self.in_rx = trio.open_memory_channel(100)
        self.out_tx, self.out_rx = trio.open_memory_channel(100)
        self.pipe_tx, self.pipe_rx = trio.open_memory_channel(100)
        self.applied: list[Apply] = []
        self.fail = fail
        self.gate: trio.Event | None = None  # when set, the pipeline waits for it

    async def pipeline(self):
        async for msg in self.pipe_rx:
            self.applied.append(msg)
            if self.gate is not None:
                await self.gate.wait()
            error = self.fail(msg)
            await self.in_tx.send(Result(msg.failed("maps", error) if error else msg.did("maps:flip")))

    async def start(self, nursery):
        nursery.start_soon(self.pipeline)
        await nursery.start(lambda task_status: reconciler.run(
            self.config, inbox=self.in_rx, outbox=self.out_tx, pipeline=self.pipe_tx,
            store=self.store, telemetry=self.tele, off_loop=self.off_loop,
            task_status=task_status))

    def reports(self) -> list[Report]:
        out = []
        while True:
            try:
                out.append(self.out_rx.receive_nowait())
            except trio.WouldBlock:
                return out


def hub(plan, deployment_id="d", **kw) -> Desired:
    """A hub state with the (test) hub's signature."""
    return signing.signed(Desired(mode="enforce", plan=plan, source="hub", deployment_id=deployment_id, **kw))


async def test_persisted_state_is_reapplied_first(tmp_path, autojump_clock):
    h = Harness(tmp_path)
    h.store.save(hub(PLAN_A))
    async with trio.open_nursery() as nursery:
        await h.start(nursery)
        await trio.sleep(1)
        assert [a.desired.digest for a in h.applied] == [PLAN_A.digest]
        assert "maps" in h.applied[0].repair  # a restarted guard rewrites its maps whole
        nursery.cancel_scope.cancel()


async def test_confirm_or_revert(tmp_path, autojump_clock):
    h = Harness(tmp_path)
    async with trio.open_nursery() as nursery:
        await h.start(nursery)
        await h.in_tx.send(hub(PLAN_A))
        await trio.sleep(1)
        await h.in_tx.send(Confirmed(PLAN_A.digest))  # the hub accepted our report
        await trio.sleep(120)
        assert h.store.load().digest == PLAN_A.digest and len(h.applied) == 1
        await h.in_tx.send(hub(PLAN_B))
        await trio.sleep(59)
        assert h.store.load().digest == PLAN_B.digest and len(h.applied) == 2
        await trio.sleep(2)  # no confirmation within 60 s: back to A
        assert [a.desired.digest for a in h.applied] == [PLAN_A.digest, PLAN_B.digest, PLAN_A.digest]
        assert h.applied[-1].desired.source == "revert"
        assert h.store.load().digest == PLAN_A.digest
        assert h.store.load("previous").digest == PLAN_B.digest
        last = h.reports()[-1]
        assert last.applied_digest == PLAN_A.digest and last.failed_digest == PLAN_B.digest
        assert "reverted" in last.errors[0]
        await trio.sleep(300)  # a revert is not itself reverted
        assert len(h.applied) == 3
        nursery.cancel_scope.cancel()


@contextlib.asynccontextmanager
async def running(tmp_path, **cfg):
    """A started reconciler on tmp_path's state; stopped (as by a crash) on leaving."""
    h = Harness(tmp_path, **cfg)
    async with trio.open_nursery() as nursery:
        await h.start(nursery)
        yield h
        nursery.cancel_scope.cancel()


async def a_confirmed_then_b(h) -> None:
    await h.in_tx.send(hub(PLAN_A, deployment_id="a"))
    await trio.sleep(1)
    await h.in_tx.send(Confirmed(PLAN_A.digest))
    await h.in_tx.send(hub(PLAN_B, deployment_id="b"))
    await trio.sleep(1)


async def test_reverted_deployment_is_held_back_until_another(tmp_path, autojump_clock):
    async with running(tmp_path) as h:
        await a_confirmed_then_b(h)
        await trio.sleep(60)  # unconfirmed: reverted
        assert h.store.load().reverted_from == (PLAN_B.digest, "b")
        await h.in_tx.send(hub(PLAN_B, deployment_id="b"))  # the hub, back, still names b
        await trio.sleep(1)
        assert len(h.applied) == 3
    async with running(tmp_path) as h:  # across a restart too (persisted with the reverted state)
        await h.in_tx.send(hub(PLAN_B, deployment_id="b"))
        await trio.sleep(1)
        assert [a.desired.digest for a in h.applied] == [PLAN_A.digest]  # the re-apply at start only
        await h.in_tx.send(hub(PLAN_B, deployment_id="b2"))  # deployed again: a new deployment
        await trio.sleep(1)
        assert [a.desired.digest for a in h.applied] == [PLAN_A.digest, PLAN_B.digest]
        await h.in_tx.send(Confirmed(PLAN_B.digest))
        await trio.sleep(300)
        assert len(h.applied) == 2 and h.store.load().reverted_from is None


async def test_reverted_deployment_arriving_before_the_revert_is_applied_is_held_back(tmp_path, autojump_clock):
    slow = trio.Event()
    async with running(tmp_path) as h:
        await a_confirmed_then_b(h)
        h.in_tx.send_nowait(hub(PLAN_B, deployment_id="b", lists=(ListState("ban", 2, {"192.0.2.7"}),)))
        await trio.sleep(58.5)  # a list change of B in the pipeline when the window closes
        h.gate = slow
        await h.in_tx.send(hub(PLAN_B, deployment_id="b", lists=(ListState("ban", 3, {"192.0.2.8"}),)))
        await trio.sleep(1)  # window closed: the revert waits behind the Apply under way ...
        await h.in_tx.send(hub(PLAN_B, deployment_id="b", lists=(ListState("ban", 4, {"192.0.2.9"}),)))
        slow.set()  # ... and B, named again by a hub just back, does not take its place
        await trio.sleep(5)
        assert h.applied[-1].desired.digest == PLAN_A.digest and h.store.load().source == "revert"
        assert h.applied[-2].desired.lists[0].revision == 3


async def test_restart_inside_the_confirm_window_still_reverts(tmp_path, autojump_clock):
    async with running(tmp_path) as h:
        await a_confirmed_then_b(h)
        # a list change during the window rewrites previous.json: the revert must not use it
        await h.in_tx.send(hub(PLAN_B, deployment_id="b", lists=(ListState("ban", 2, {"192.0.2.7"}),)))
        await trio.sleep(10)
    # the agent stopped (crash, reboot) before the hub confirmed B
    assert h.store.load("previous").digest == PLAN_B.digest
    async with running(tmp_path) as h:
        await trio.sleep(59)
        assert [a.desired.digest for a in h.applied] == [PLAN_B.digest]  # fail static first
        await trio.sleep(2)  # a whole window after the restart: back to A
        assert [a.desired.digest for a in h.applied] == [PLAN_B.digest, PLAN_A.digest]
        assert h.store.load().source == "revert" and h.store.load().lists == ()
        assert h.reports()[-1].failed_digest == PLAN_B.digest
    async with running(tmp_path) as h:  # reverted: nothing awaits the hub any more
        await trio.sleep(300)
        assert len(h.applied) == 1


async def test_confirmed_plan_survives_a_restart(tmp_path, autojump_clock):
    async with running(tmp_path) as h:
        await a_confirmed_then_b(h)
        await h.in_tx.send(Confirmed(PLAN_B.digest))
        await trio.sleep(1)
    async with running(tmp_path) as h:
        await trio.sleep(300)
        assert [a.desired.digest for a in h.applied] == [PLAN_B.digest]


async def test_confirmed_plan_stays(tmp_path, autojump_clock):
    h = Harness(tmp_path)
    async with trio.open_nursery() as nursery:
        await h.start(nursery)
        await h.in_tx.send(hub(PLAN_B))
        await trio.sleep(10)
        await h.in_tx.send(Confirmed(PLAN_B.digest))
        await trio.sleep(3600)  # a hub away for an hour changes nothing
        assert [a.desired.digest for a in h.applied] == [PLAN_B.digest]
        nursery.cancel_scope.cancel()


async def test_lockout_guard_refuses_hub_plan(tmp_path, autojump_clock):
    h = Harness(tmp_path, admin_prefixes=("198.51.100.0/24",), hub_address="192.0.2.50", hub_port=8443)
    async with trio.open_nursery() as nursery:
        await h.start(nursery)
        await h.in_tx.send(hub(LOCKOUT))
        await trio.sleep(1)
        assert h.applied == []
        (rep,) = h.reports()
        assert rep.failed_digest == LOCKOUT.digest
        assert "the hub at 192.0.2.50 port 8443" in rep.errors[0] and "198.51.100.0/24" in rep.errors[0]
        nursery.cancel_scope.cancel()


def _with_nft(plan, change):
    doc = plan.nft
    change(doc["nftables"])
    return dataclasses.replace(plan, nft_json=json.dumps(doc), _cache={})


@pytest.mark.parametrize("change, reason", [
    (lambda c: c.append({"add": {"rule": {"family": "inet", "table": "bulwark", "chain": "input",
                                          "expr": [{"dup": {"addr": "192.0.2.66"}}]}}}), "'dup'"),
    (lambda c: c.append({"add": {"chain": {"family": "inet", "table": "bulwark", "name": "nat",
                                           "type": "nat", "hook": "prerouting", "prio": -100,
                                           "policy": "accept"}}}), "chain 'nat'"),
])
async def test_a_hub_plan_with_an_nft_part_the_compiler_cannot_write_is_refused(
        tmp_path, autojump_clock, change, reason):
    h = Harness(tmp_path)
    hostile = _with_nft(PLAN_B, change)
    async with trio.open_nursery() as nursery:
        await h.start(nursery)
        await h.in_tx.send(hub(PLAN_A))
        await trio.sleep(1)
        await h.in_tx.send(hub(hostile))
        await trio.sleep(1)
        assert [a.desired.digest for a in h.applied] == [PLAN_A.digest]  # A stays
        rep = h.reports()[-1]
        assert rep.failed_digest == hostile.digest
        assert "nftables part the compiler cannot produce" in rep.errors[0] and reason in rep.errors[0]
        nursery.cancel_scope.cancel()


async def test_the_nft_stage_is_judged_on_the_agent_with_the_live_values(tmp_path, autojump_clock):
    """The hub could not know this server's admin prefix: the Plan's stateful part drops it."""
    plan = load('policy "s"\ndefault pass\npass tcp flags ack/ack\n'
                'stateful { drop tcp from 198.51.100.0/24 dport 22 }\n', "s.bw").plan
    h = Harness(tmp_path, admin_prefixes=("198.51.100.0/24",))
    async with trio.open_nursery() as nursery:
        await h.start(nursery)
        await h.in_tx.send(hub(plan))
        await trio.sleep(1)
        assert h.applied == []
        (rep,) = h.reports()
        assert "nft rule" in rep.errors[0] and "SSH (port 22) from 198.51.100.0/24" in rep.errors[0]
        nursery.cancel_scope.cancel()


async def test_the_guard_runs_off_the_event_loop_thread(tmp_path, monkeypatch):
    seen = []
    real = reconciler.lockout.check_plan

    def spy(*args):
        seen.append(threading.get_ident())
        return real(*args)

    monkeypatch.setattr(reconciler.lockout, "check_plan", spy)
    h = Harness(tmp_path, off_loop=trio.to_thread.run_sync)
    async with trio.open_nursery() as nursery:
        await h.start(nursery)
        await h.in_tx.send(hub(PLAN_A))
        with trio.fail_after(10):
            while not h.applied:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert seen and threading.get_ident() not in seen


async def test_failed_apply_keeps_current(tmp_path, autojump_clock):
    h = Harness(tmp_path, fail=lambda a: "kernel said no" if a.desired.plan is PLAN_B else None)
    async with trio.open_nursery() as nursery:
        await h.start(nursery)
        await h.in_tx.send(hub(PLAN_A))
        await trio.sleep(1)
        await h.in_tx.send(hub(PLAN_B))
        await trio.sleep(1)
        assert [a.desired.digest for a in h.applied] == [PLAN_A.digest, PLAN_B.digest, PLAN_A.digest]
        assert h.store.load().digest == PLAN_A.digest
        failed = [r for r in h.reports() if r.failed_digest]
        assert failed and failed[0].failed_digest == PLAN_B.digest and "kernel said no" in failed[0].errors[0]
        nursery.cancel_scope.cancel()


async def test_drift_is_repaired(tmp_path, autojump_clock):
    h = Harness(tmp_path)
    async with trio.open_nursery() as nursery:
        await h.start(nursery)
        await h.in_tx.send(Desired(mode="enforce", plan=PLAN_A))
        await trio.sleep(1)
        await h.in_tx.send(Drift(("nft: table inet bulwark is gone",)))
        await trio.sleep(1)
        assert len(h.applied) == 2 and h.applied[1].repair == frozenset({"nft"})
        assert h.tele.repairs == 1
        nursery.cancel_scope.cancel()

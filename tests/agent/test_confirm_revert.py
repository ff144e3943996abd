"""Confirm-or-revert end to end, against a real hub process: a Plan applied while the hub
goes away is taken back within the confirm window, the hub hears why when it returns,
the reverted deployment is not applied again by itself, and a Plan the hub confirms
in time stays."""
from __future__ import annotations

import pytest
import trio

from agent.daemon import build, run_agent
from agent.standalone import status
from rules_dsl import load
from tests.agent.conftest import (POLICY_A, POLICY_B, VERDICT_A, VERDICT_B, guard_verdicts, nft_rule_ports,
                                  udp_delivered)
from tests.agent.test_daemon import until
from tests.agent.test_managed import enroll, tenant_api

pytestmark = pytest.mark.kernel

DIGEST_A = load(POLICY_A, "a.bw").plan.digest
DIGEST_B = load(POLICY_B, "b.bw").plan.digest
WINDOW_S = 3.0


def enforces(lab, pin, verdicts, nft_port) -> bool:
    """The pinned maps, the table, and a real packet all say the same Plan."""
    port = 9999 if verdicts == VERDICT_A else 7777  # UDP port the Plan drops
    return (guard_verdicts(pin) == verdicts and nft_rule_ports(lab.ns) == {nft_port}
            and udp_delivered(lab, lab.peer_addr, port, 5) == 0)


async def test_plan_unconfirmed_is_reverted_and_confirmed_plan_stays(veth_lab, pin_dir, make_config,
                                                                     hub_process):
    lab, hub = veth_lab, hub_process
    cfg, cred = await enroll(hub, make_config(lab, pin_dir, confirm_window_s=WINDOW_S, long_poll_s=2,
                                              http_timeout_s=1.0))
    agent_id = cred["agent_id"]

    async def deploy(source: str, name: str) -> str:
        async with tenant_api(hub) as api:
            r = await api.post("/policies", json={"name": name, "source": source})
            assert r.status_code == 201, r.text
            r = await api.post("/deployments", json={"policy_id": r.json()["id"], "agent_ids": [agent_id]})
            assert r.status_code == 201, r.text
            return r.json()["id"]

    async def hub_view(path: str = f"/agents/{agent_id}") -> dict:
        async with tenant_api(hub) as api:  # a new client each time: the hub restarts
            return (await api.get(path)).json()

    async def hub_until(predicate, timeout_s: float = 15) -> dict:
        with trio.fail_after(timeout_s):
            while not predicate(seen := await hub_view()):
                await trio.sleep(0.1)
        return seen

    async with tenant_api(hub) as api:
        await api.post("/lists", json={"name": "ban", "kind": "deny"})
    await deploy(POLICY_A, "a")
    agent = build(cfg, credential=cred)
    pin = cfg.pin_dir

    # the hub stops the moment the kernel holds B, before the agent can report it
    applied_b = trio.Event()
    apply_nft = agent.dataplane.apply_nft

    def apply_nft_then_hub_gone(desired, **kw):
        out = apply_nft(desired, **kw)
        if desired.digest == DIGEST_B and not applied_b.is_set():
            hub.stop()
            trio.from_thread.run_sync(applied_b.set)
        return out
    agent.dataplane.apply_nft = apply_nft_then_hub_gone

    async with trio.open_nursery() as nursery:
        await nursery.start(run_agent, agent)
        await until(lambda: enforces(lab, pin, VERDICT_A, 23), 20)
        await hub_until(lambda seen: seen.get("applied_digest") == DIGEST_A)  # reported, so confirmed

        deployment_b = await deploy(POLICY_B, "b")
        with trio.fail_after(20):
            await applied_b.wait()
        await until(lambda: agent.store.load().digest == DIGEST_B)  # B applied and persisted
        await until(lambda: status(cfg)["awaiting_confirmation"])  # what `agent status` shows
        # no hub within the window: the kernel goes back to A
        await until(lambda: enforces(lab, pin, VERDICT_A, 23), WINDOW_S + 10)
        assert agent.store.load().digest == DIGEST_A and agent.dataplane.maps_desired.digest == DIGEST_A
        assert await trio.to_thread.run_sync(udp_delivered, lab, lab.peer_addr, 7777, 5) == 5  # B's drop is gone
        st = await trio.to_thread.run_sync(status, cfg)
        assert st["reverted_from"] == [DIGEST_B, deployment_b] and not st["awaiting_confirmation"]

        # the hub comes back and hears what happened and why
        hub.start()
        seen = await hub_until(lambda seen: (seen.get("status") or {}).get("failed_digest") == DIGEST_B)
        assert seen["applied_digest"] == DIGEST_A
        assert any("hub not reached" in e and "reverted" in e for e in seen["status"]["errors"]), seen
        targets = (await hub_view(f"/deployments/{deployment_b}"))["targets"]
        assert [t["status"] for t in targets] == ["failed"] and "reverted" in targets[0]["error"]
        # the hub still names B, but the agent does not take a reverted deployment again by itself
        await trio.sleep(WINDOW_S)
        assert await trio.to_thread.run_sync(enforces, lab, pin, VERDICT_A, 23)

        # a new deployment of B, with the hub up: applied, confirmed, and it stays
        await deploy(POLICY_B, "b2")
        await until(lambda: enforces(lab, pin, VERDICT_B, 24), 20)
        await hub_until(lambda seen: seen.get("applied_digest") == DIGEST_B)
        await trio.sleep(WINDOW_S * 2)
        assert await trio.to_thread.run_sync(enforces, lab, pin, VERDICT_B, 24)
        assert agent.store.load().digest == DIGEST_B and len(agent.telemetry.reverts) == 1
        nursery.cancel_scope.cancel()
    agent.dataplane.close()

"""Managed mode against a real hub process on loopback: enrol (credential 0600), desired
state by long-poll, a list delta edits the live maps, the hub's disable deactivates and
enable restores, and with the hub gone a denied source stays dropped."""
from __future__ import annotations

import os
import stat

import httpx
import pytest
import trio

from agent.cli import main
from agent.daemon import build, run_agent
from agent.hub_link import load_credential
from tests.agent.conftest import POLICY_B, VERDICT_B, guard_verdicts, nft_rule_ports, udp_delivered
from tests.agent.test_daemon import attached, until

pytestmark = pytest.mark.kernel


async def enroll(hub, cfg):
    """Enrol through the CLI; the config completed with the hub's values, and the credential."""
    flags = ["--name", cfg.name, "--pin-root", cfg.pin_root, "--state-root", cfg.state_root,
             "--iface", cfg.iface, "--netns", cfg.netns, "--allow-insecure-http"]
    assert await trio.to_thread.run_sync(main, ["enroll", "--hub", hub["url"], "--token", hub["join_token"], *flags]) == 0
    cred = load_credential(cfg)
    return cfg.replace(hub_url=cred["hub_url"], hub_address="127.0.0.1", hub_port=hub.port), cred


def tenant_api(hub) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"{hub['url']}/api/v1/tenants/{hub['tenant']}",
                             headers={"Authorization": f"Bearer {hub['api_token']}"}, timeout=10)


async def test_managed_mode_end_to_end(veth_lab, pin_dir, make_config, hub_process, tmp_path):
    lab, hub = veth_lab, hub_process
    lab.add_peer_address("203.0.113.9")
    cfg, cred = await enroll(hub, make_config(lab, pin_dir, confirm_window_s=600, long_poll_s=2))
    assert stat.S_IMODE(os.stat(cfg.credential_path).st_mode) == 0o600

    async with tenant_api(hub) as api:
        r = await api.post("/lists", json={"name": "ban", "kind": "deny"})
        list_id = r.json()["id"]
        r = await api.post("/policies", json={"name": "b", "source": POLICY_B})
        assert r.status_code == 201, r.text
        r = await api.post("/deployments", json={"policy_id": r.json()["id"], "agent_ids": [cred["agent_id"]]})
        assert r.status_code == 201, r.text

        agent = build(cfg, credential=cred)
        pin = cfg.pin_dir
        async with trio.open_nursery() as nursery:
            await nursery.start(run_agent, agent)
            await until(lambda: guard_verdicts(pin) == VERDICT_B and nft_rule_ports(lab.ns) == {24}, 20)
            # the hub hears what was applied
            with trio.fail_after(10):
                while (await api.get(f"/agents/{cred['agent_id']}")).json().get("applied_digest") is None:
                    await trio.sleep(0.2)

            # a list delta reaches the live maps
            assert await trio.to_thread.run_sync(udp_delivered, lab, "203.0.113.9", 5000) == 20
            r = await api.post(f"/lists/{list_id}/entries", json={"add": [{"network": "203.0.113.0/24"}]})
            assert r.status_code in (200, 201), r.text
            await until(lambda: udp_delivered(lab, "203.0.113.9", 5000, 5) == 0, 10, 0.2)

            # disable at the hub deactivates; enable restores
            await api.post(f"/agents/{cred['agent_id']}/disable")
            await until(lambda: not attached(lab, pin) and nft_rule_ports(lab.ns) is None, 10)
            await api.post(f"/agents/{cred['agent_id']}/enable")
            await until(lambda: attached(lab, pin) and nft_rule_ports(lab.ns) == {24}, 10)
            await until(lambda: udp_delivered(lab, "203.0.113.9", 5000, 5) == 0, 10, 0.2)

            # the hub goes away: nothing changes in enforcement
            hub.stop()
            await trio.sleep(3)
            assert await trio.to_thread.run_sync(udp_delivered, lab, "203.0.113.9", 5000) == 0
            assert agent.telemetry.hub.get("connected") is False
            nursery.cancel_scope.cancel()
        agent.dataplane.close()


def desired_requests(hub) -> float:
    """Desired-state requests the hub has answered (a streamed one counts when it ends)."""
    text = httpx.get(f"{hub['url']}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("bulwark_hub_requests_total{") and 'endpoint="agent_protocol.desired_state"' in line)


async def test_changes_reach_a_managed_agent_on_one_streamed_request(veth_lab, pin_dir, make_config, hub_process):
    """Five list changes, each enforced in turn, and the agent asked the hub once: every
    change came as a line of the same streamed answer (no request, no authentication, no
    row read at the hub per change and agent)."""
    lab, hub = veth_lab, hub_process
    cfg, cred = await enroll(hub, make_config(lab, pin_dir, confirm_window_s=600, long_poll_s=120))
    async with tenant_api(hub) as api:
        list_id = (await api.post("/lists", json={"name": "ban", "kind": "deny"})).json()["id"]
        r = await api.post("/policies", json={"name": "b", "source": POLICY_B})
        r = await api.post("/deployments", json={"policy_id": r.json()["id"], "agent_ids": [cred["agent_id"]]})
        assert r.status_code == 201, r.text
        agent = build(cfg, credential=cred)
        async with trio.open_nursery() as nursery:
            await nursery.start(run_agent, agent)
            await until(lambda: guard_verdicts(cfg.pin_dir) == VERDICT_B, 20)

            async def reported_revision() -> int:
                return (await api.get(f"/agents/{cred['agent_id']}")).json()["list_revisions"].get(list_id, 0)

            before = await trio.to_thread.run_sync(desired_requests, hub)
            for n in range(1, 6):
                r = await api.post(f"/lists/{list_id}/entries", json={"add": [{"network": f"203.0.113.{n}"}]})
                assert r.json()["revision"] == n
                with trio.fail_after(10):
                    while await reported_revision() != n:
                        await trio.sleep(0.05)
            assert await trio.to_thread.run_sync(desired_requests, hub) == before  # still the one stream
            nursery.cancel_scope.cancel()
        agent.dataplane.close()

"""A capture asked for at the hub reaches a running agent through its long-poll; the
agent records on its interface (in its namespace) and uploads; the hub keeps it and it
reads back as the traffic sent."""
from __future__ import annotations

import pytest
import trio

from agent.daemon import build, run_agent
from rules_dsl import parse_frame
from rules_dsl.capture import read_capture
from tests.agent.test_managed import enroll, tenant_api

pytestmark = pytest.mark.kernel


async def test_hub_asks_agent_records_and_uploads(veth_lab, pin_dir, make_config, hub_process):
    lab, hub = veth_lab, hub_process
    cfg, cred = await enroll(hub, make_config(lab, pin_dir, confirm_window_s=600, long_poll_s=2))
    async with tenant_api(hub) as api:
        agent = build(cfg, credential=cred)
        async with trio.open_nursery() as nursery:
            await nursery.start(run_agent, agent)
            r = await api.post("/captures", json={"agent_id": cred["agent_id"], "max_frames": 30, "max_seconds": 4})
            assert r.status_code == 202, r.text
            asked = r.json()["id"]
            await trio.sleep(1.0)  # the long-poll answers, the agent's socket is bound
            await trio.to_thread.run_sync(lambda: lab.send_udp(20, 27015, pace_every=4))
            with trio.fail_after(20):
                while not (kept := (await api.get("/captures")).json()["captures"]):
                    await trio.sleep(0.3)
            assert kept[0]["id"] == asked
            pcap = (await api.get(f"/captures/{asked}")).content
            packets = [parse_frame(r.data) for r in read_capture(pcap)]
            assert sum(p.proto == 17 and p.dport == 27015 for p in packets) >= 15
            nursery.cancel_scope.cancel()
        agent.dataplane.close()

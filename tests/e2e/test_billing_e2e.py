"""Dunning reaches the kernel: a real hub process billing through the Stripe fake (on
loopback, the real `stripe` library inside the hub), a real `bulwark agent run` protecting a
veth in a namespace, real packets from a denied source. Unpaid, the tenant goes through
the moved clock (`bulwark hub billing dunning --as-of`, the hourly job judged a week on)
to suspended: the agent removes its XDP program and its nftables table and reports it, and
the denied source's packets pass. A payment webhook restores: the agent re-applies its last
Plan and the source is dropped again.

What reached the site is counted by a packet socket on its protected interface, which sees
only what XDP passed."""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import time

import httpx
import pytest

from demo.agents import AgentProcess
from demo.hub import HubProcess, sign_in, open_tenant
from demo.observe import enforced
from demo.policy import DENY_LIST, web_policy
from demo.processes import free_port
from demo.topology import Topology
from demo.traffic import DENIED_SOURCE, Receiver, Sender
from tests.e2e.test_fleet import CONTROL, ack_flow, wait_for
from tests.hub.stripe_fake import StripeFake

pytestmark = pytest.mark.kernel

EMAIL, PASSWORD = "ops@example.com", "correct horse battery staple"
SECRET = "whsec_e2e"


def table_present(ns: str) -> bool:
    out = subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "tables"], capture_output=True, text=True,
                         timeout=10, check=True).stdout
    return "inet bulwark" in out


def xdp_attached(ns: str, iface: str) -> bool:
    out = subprocess.run(["ip", "-n", ns, "link", "show", iface], capture_output=True, text=True, timeout=10,
                         check=True).stdout
    return "xdp" in out


def burst(topo: Topology, site, receiver: Receiver, seconds: float = 1.0) -> dict[str, int]:
    """Denied-source and control ACKs for `seconds`: what reached the site of each."""
    before = receiver.seen.copy()
    sender = Sender(topo.gen_ns, [ack_flow(site, DENIED_SOURCE, "denied"), ack_flow(site, CONTROL, "control")],
                    seconds).start()
    sender.join(seconds + 5)
    sender.stop()
    if sender.error:
        raise sender.error
    time.sleep(0.3)
    return {src: receiver.seen[src] - before[src] for src in (DENIED_SOURCE, CONTROL)}


def test_suspension_deactivates_the_agent_and_payment_restores_it(tmp_path):
    with StripeFake() as fake:
        topo = Topology.create(f"bwb{os.getpid() % 100000}", sites=1)
        port = free_port()
        hub = HubProcess(url=f"http://127.0.0.1:{port}", data_dir=tmp_path / "hub", bind=f"127.0.0.1:{port}",
                         log=tmp_path / "hub.log", settings={"stripe_api_key": "sk_test_e2e",
                                                             "stripe_api_base": fake.url,
                                                             "stripe_webhook_secret": SECRET})
        agent, receiver, api, owner = None, None, None, None
        try:
            otpauth = hub.create_admin(EMAIL, PASSWORD, totp=True)
            hub.start()
            api = open_tenant(hub.url, EMAIL, PASSWORD, otpauth)
            api.create_list(DENY_LIST, "deny", [f"{DENIED_SOURCE}/32"])
            site = topo.sites[0]
            agent = AgentProcess("a0", site, topo.pin_root, tmp_path, free_port())
            agent.write_config()
            agent.enroll(hub.url, api.join_token())
            agent.start()
            receiver = Receiver(site)
            receiver.start()
            digest = api.deploy(api.create_policy("web", web_policy())["id"], [agent.agent_id])["digest"]
            agent.wait_for("the plan applied", lambda st: st.get("applied_digest") == digest, 30)
            assert table_present(site.ns) and xdp_attached(site.ns, site.iface)
            seen = burst(topo, site, receiver)
            assert seen[DENIED_SOURCE] == 0 and seen[CONTROL] > 0

            (sub_id,) = [o["id"] for o in fake.objects.values() if o["object"] == "subscription"]
            assert fake.objects[sub_id]["status"] == "trialing"

            def deliver(type_: str, obj: dict) -> None:
                body, sig = fake.event(type_, obj, SECRET)
                r = httpx.post(f"{hub.url}/billing/stripe/webhook", content=body, timeout=30,
                               headers={"Stripe-Signature": sig, "Content-Type": "application/json"})
                assert r.status_code == 200, r.text

            owner = OwnerSession(hub.url, api)

            def billing_state() -> str:
                return owner.state()

            # the trial ends without a card: the invoice fails (D+0), then a week passes (D+7)
            deliver("invoice.payment_failed", fake.start_period(sub_id, status="past_due"))
            assert billing_state() == "past_due"
            as_of = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=7, minutes=5)).isoformat()
            out = subprocess.run(hub.command("billing", "dunning", "--as-of", as_of), capture_output=True,
                                 text=True, timeout=120)
            assert out.returncode == 0, out.stderr
            assert "1 tenant(s) suspended" in out.stdout
            assert billing_state() == "suspended"

            # the CLI's change reaches a SQLite hub's agents at their next poll (long_poll_s), not by a push
            agent.wait_for("protections deactivated", lambda st: st.get("mode") == "deactivate", 45)
            wait_for("the program and the table removed",
                     lambda: not table_present(site.ns) and not xdp_attached(site.ns, site.iface), 10)
            wait_for("the hub told it is deactivated",
                     lambda: (api.agent(agent.agent_id)["status"] or {}).get("mode") == "deactivated", 15)
            assert enforced(agent.config()).xdp_mode is None
            seen = burst(topo, site, receiver)
            assert seen[DENIED_SOURCE] > 0 and seen[CONTROL] > 0  # nothing filters: the denied source passes

            # a payment restores everything: the agent re-applies its last Plan
            deliver("invoice.paid", fake.start_period(sub_id, at=fake.now, status="active"))
            assert billing_state() == "active"
            agent.wait_for("the last plan re-applied",
                           lambda st: st.get("mode") == "enforce" and st.get("applied_digest") == digest, 30)
            wait_for("the program and the table back", lambda: table_present(site.ns) and xdp_attached(site.ns, site.iface), 10)
            seen = burst(topo, site, receiver)
            assert seen[DENIED_SOURCE] == 0 and seen[CONTROL] > 0
        finally:
            if receiver is not None:
                receiver.stop()
            if agent is not None:
                agent.stop()
            hub.stop()
            if api is not None:
                api.close()
            if owner is not None:
                owner.client.close()
            topo.remove()


class OwnerSession:
    """The tenant's owner, signed in once (a 2FA code is good once per 30 s step, so
    signing in for every look would run out of codes), reading the billing state (scope
    `billing`)."""

    def __init__(self, url: str, api) -> None:
        self.client = httpx.Client(base_url=url, timeout=30)
        self.tenant = api.tenant
        self.csrf = sign_in(self.client, EMAIL, PASSWORD, api.otpauth)

    def state(self) -> str:
        r = self.client.get(f"/api/v1/tenants/{self.tenant}/billing", headers=self.csrf)
        assert r.status_code == 200, r.text
        return r.json()["state"]

"""End to end, as `make demo` runs it: a hub process (Hypercorn on loopback), two
`bulwark agent run` processes enrolled with join tokens, each protecting a veth in its own
namespace, real packets from a third (demo.topology, demo.traffic). One test walks a
deployment's life, each step on the previous one's state: attacks dropped in XDP while
legitimate handshakes succeed; a list change through the public API enforced on both
agents within 1 s; the hub's view of digests and metrics; an agent restart with no gap;
a rollback everywhere; the hub gone and enforcement intact.

What reached a site is counted by a packet socket on its protected interface, which sees
only what XDP passed."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import pytest

from agent.sampler import rule_name
from bpf import in_netns
from demo.agents import AgentProcess
from demo.hub import HubProcess, sign_in, TenantApi, open_tenant
from demo.observe import by_text, enforced
from demo.policy import DENY_LIST, REFLECTION_RULE, hardened_policy, web_policy
from demo.probe import ack_flow, timed_change
from demo.processes import free_port
from demo.topology import Site, Topology
from demo.traffic import DENIED_SOURCE, UDP, Flow, HttpServer, Receiver, Sender, attack_flows, frame, http_get
from rules_dsl import load

pytestmark = pytest.mark.kernel

EMAIL, PASSWORD = "ops@example.com", "correct horse battery staple"
NEW_DENIED = "203.0.113.77"     # denied through the API during the test
CONTROL = "198.19.9.9"          # its ACKs pass web.bw: proof that a stream really flowed
LIMIT_RULE = "pass tcp dport @web flags syn/syn|ack"


@dataclass
class Fleet:
    topo: Topology
    hub: HubProcess
    api: TenantApi
    agents: list[AgentProcess]
    receivers: list[Receiver]
    deny_list: str


@pytest.fixture
def fleet(tmp_path):
    topo = Topology.create(f"bwe{os.getpid() % 100000}", sites=2)
    port = free_port()
    # surges judged over 3 s, every second: an attack is seen within seconds, not minutes
    hub = HubProcess(url=f"http://127.0.0.1:{port}", data_dir=tmp_path / "hub", bind=f"127.0.0.1:{port}",
                     log=tmp_path / "hub.log", settings={"alerts_surge_window_s": 3, "alerts_surge_interval_s": 1})
    agents, threads, api = [], [], None
    try:
        otpauth = hub.create_admin(EMAIL, PASSWORD, totp=True)
        hub.start()
        api = open_tenant(hub.url, EMAIL, PASSWORD, otpauth)
        deny_list = api.create_list(DENY_LIST, "deny", [f"{DENIED_SOURCE}/32"])
        for site in topo.sites:
            agent = AgentProcess(f"a{site.index}", site, topo.pin_root, tmp_path, free_port())
            agent.write_config()
            agent.enroll(hub.url, api.join_token())
            agent.start()
            agents.append(agent)
        receivers = [Receiver(site) for site in topo.sites]
        for thread in (*receivers, *(HttpServer(site) for site in topo.sites)):
            thread.start()
            threads.append(thread)
        yield Fleet(topo, hub, api, agents, receivers, deny_list)
    finally:
        for thread in threads:
            thread.stop()
        for agent in agents:
            agent.stop()
        hub.stop()
        if api is not None:
            api.close()
        topo.remove()


def stream(fleet: Fleet, flows: list[tuple[Site, Flow]], seconds: float) -> Sender:
    return Sender(fleet.topo.gen_ns, flows, seconds).start()


def finish(sender: Sender) -> dict:
    sender.join(sender.duration_s + 5)
    sender.stop()
    if sender.error:
        raise sender.error
    return dict(sender.sent)


def handshakes(fleet: Fleet, site: Site, count: int) -> int:
    """Legitimate HTTP requests (full TCP handshakes) from the generator that succeed."""
    with in_netns(fleet.topo.gen_ns):
        return sum(http_get(site.addr, source=site.gen_addr) for _ in range(count))


def wait_applied(fleet: Fleet, digest: str) -> None:
    """Every agent reports digest applied, on its own /status and at the hub."""
    for agent in fleet.agents:
        agent.wait_for(f"digest {digest[:12]} applied", lambda st: st.get("applied_digest") == digest, 30)
    deadline = time.monotonic() + 10
    while any(fleet.api.agent(a.agent_id)["applied_digest"] != digest for a in fleet.agents):
        assert time.monotonic() < deadline, "the hub does not show the digest applied on every agent"
        time.sleep(0.1)


def wait_for(what: str, predicate, timeout_s: float = 5) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s"
        time.sleep(0.02)


def test_a_deployment_through_its_life(fleet):
    api, sites, hub_port = fleet.api, fleet.topo.sites, int(fleet.hub.url.rsplit(":", 1)[1])
    ids = [a.agent_id for a in fleet.agents]
    policy = api.create_policy("web", web_policy())
    v1 = api.deploy(policy["id"], ids)
    wait_applied(fleet, v1["digest"])
    api.save_policy(policy["id"], hardened_policy())
    v2 = api.deploy(policy["id"], ids)
    assert v2["digest"] != v1["digest"]
    wait_applied(fleet, v2["digest"])

    # attacks are dropped in XDP while legitimate handshakes succeed
    sender = stream(fleet, [(s, f) for s in sites for f in attack_flows(s)], 3)
    assert [handshakes(fleet, s, 10) for s in sites] == [10, 10]
    sent = finish(sender)
    for agent, receiver in zip(fleet.agents, fleet.receivers):
        k = enforced(agent.config())
        assert k.digest == v2["digest"] and k.xdp_mode == "native"
        rules = by_text(k.rules)
        assert rules["drop from @blocklist"].dropped > 0
        assert rules[REFLECTION_RULE].dropped > 0                   # DNS answers of 1200 bytes
        assert rules["default drop"].dropped > 0                    # NTP monlist answers
        limit = next(r for text, r in rules.items() if text.startswith(LIMIT_RULE))
        assert limit.dropped > 0 and limit.passed > 0               # bots over their SYN rate
        seen = receiver.seen
        assert seen[DENIED_SOURCE] == 0
        assert not [src for src in seen if src.startswith(("198.19.53.", "198.19.123."))]
        flood_seen = sum(n for src, n in seen.items() if src.startswith("198.19.1."))
        assert 0 < flood_seen < sent[(agent.site.index, "syn-flood")]

    # a list change through the public API is enforced on both agents within 1 s
    assert timed_change(fleet.topo.gen_ns, sites, fleet.receivers, NEW_DENIED,
                        lambda: api.change_list(fleet.deny_list, add=[f"{NEW_DENIED}/32"]), pps=200) < 1.0

    # the hub shows each agent's applied digest (wait_applied) and its metrics
    wait_applied(fleet, v2["digest"])
    blocklist = rule_name(next(i for i, r in enumerate(load(hardened_policy()).plan.xdp.rules)
                               if r.text == "drop from @blocklist"))
    for agent in fleet.agents:
        wait_for(f"metrics of {agent.name} at the hub",
                 lambda: any(p["rule"] == blocklist and p["packets"] > 0 for p in api.metrics(agent.agent_id)), 10)

    # restarting an agent leaves no gap: a denied source never passes, the control always does
    before = [r.seen.copy() for r in fleet.receivers]
    sender = stream(fleet, [f for s in sites for f in (ack_flow(s, DENIED_SOURCE, "denied"),
                                                         ack_flow(s, CONTROL, "control"))], 30)
    time.sleep(0.5)
    restarted = fleet.agents[0]
    assert restarted.stop() == 0
    time.sleep(0.5)
    restarted.start()
    restarted.wait_for("the restart re-applied", lambda st: st.get("applied_digest") == v2["digest"], 30)
    time.sleep(0.5)
    finish_early(sender)
    for receiver, seen_before in zip(fleet.receivers, before):
        assert receiver.seen[DENIED_SOURCE] == seen_before[DENIED_SOURCE] == 0
        assert receiver.seen[CONTROL] - seen_before[CONTROL] > 0.8 * sender.sent[(receiver.site.index, "control")]

    # a rollback restores the previous digest everywhere, and the kernel enforces it again
    back = api.rollback(v1["id"])
    assert back["digest"] == v1["digest"]
    wait_applied(fleet, v1["digest"])
    reflection = [(s, Flow("dns", 100, (frame(s, "198.19.53.9", proto=UDP, sport=53, dport=30000, length=1200),)))
                  for s in sites]
    finish(stream(fleet, reflection, 0.5))
    wait_for("v1 passing large DNS answers again", lambda: all(r.seen["198.19.53.9"] for r in fleet.receivers))
    for agent in fleet.agents:
        assert enforced(agent.config()).digest == v1["digest"]

    # stopping the hub leaves enforcement intact
    fleet.hub.stop()
    before = [r.seen.copy() for r in fleet.receivers]
    sender = stream(fleet, [f for s in sites for f in (ack_flow(s, DENIED_SOURCE, "denied"),
                                                         ack_flow(s, NEW_DENIED, "new-denied"),
                                                         ack_flow(s, CONTROL, "control"))], 1.5)
    assert [handshakes(fleet, s, 5) for s in sites] == [5, 5]
    finish(sender)
    for agent, receiver, seen_before in zip(fleet.agents, fleet.receivers, before):
        assert agent.proc.poll() is None
        assert receiver.seen[DENIED_SOURCE] == 0 and receiver.seen[NEW_DENIED] == seen_before[NEW_DENIED]
        assert receiver.seen[CONTROL] > seen_before[CONTROL]
        k = enforced(agent.config())
        assert k.digest == v1["digest"] and k.xdp_mode == "native"


def finish_early(sender: Sender) -> None:
    sender.stop()
    if sender.error:
        raise sender.error


def test_a_real_attack_raises_one_surge_alert_and_one_resolve(fleet):
    """Real packets from the generator namespace, dropped by the guard in the agents,
    counted by the sampler, sent to the hub: one attack_surge incident per agent, one
    message when it opens and one when it calms down."""
    import httpx

    api, sites = fleet.api, fleet.topo.sites
    ids = [a.agent_id for a in fleet.agents]
    digest = api.deploy(api.create_policy("web", web_policy())["id"], ids)["digest"]
    wait_applied(fleet, digest)
    with httpx.Client(base_url=fleet.hub.url, timeout=10) as owner:
        csrf = sign_in(owner, EMAIL, PASSWORD, fleet.api.otpauth)
        base = f"/api/v1/tenants/{api.tenant}/alerts"
        r = owner.put(f"{base}/rules/attack_surge", json={"params": {"dropped_pps": 100}}, headers=csrf)
        assert r.status_code == 200, r.text
        r = owner.post(f"{base}/channels", json={"kind": "email", "name": "ops", "target": "ops@example.com"},
                       headers=csrf)
        assert r.status_code == 201, r.text

    def surges(state: str | None = None) -> list[dict]:
        query = {"kind": "attack_surge"} | ({"state": state} if state else {})
        return api.client.get("/alerts/incidents", params=query).json()["incidents"]

    # NTP monlist answers (the default drop) and the denied source: about 200 drops/s a site
    sender = stream(fleet, [(s, f) for s in sites for f in attack_flows(s)
                            if f.name in ("ntp-reflection", "denied-source")], 30)
    wait_for("a surge alert for every agent", lambda: len(surges("open")) == 2, 20)
    time.sleep(2)  # still under attack: the same incidents, no new ones
    finish_early(sender)
    wait_for("the surges resolved once the attack stopped", lambda: len(surges("resolved")) == 2, 20)
    incidents = surges()
    assert sorted(i["subject"] for i in incidents) == sorted(ids) and len(incidents) == 2
    assert all("packets/s" in i["summary"] for i in incidents)
    messages = api.client.get("/alerts/outbox").json()["messages"]
    subjects = sorted(m["subject"].split(":")[0] for m in messages if "dropping" in m["subject"])
    assert subjects == ["[Bulwark] Alert", "[Bulwark] Alert", "[Bulwark] Resolved", "[Bulwark] Resolved"]

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.hub.harness import enroll, unpacked

EXAMPLES = Path(__file__).parents[2] / "examples"
SSH = (EXAMPLES / "ssh.bw").read_text()
WEB = (EXAMPLES / "web.bw").read_text()


async def _policy(t, source=SSH, name="ssh"):
    r = await t.token.post(t.base + "/policies", json={"name": name, "source": source})
    assert r.status_code == 201, await r.get_data(as_text=True)
    return await r.get_json()


async def test_every_save_is_a_checked_version(hub):
    import rules_dsl

    t = await hub.tenant()
    p = await _policy(t)
    assert p["latest"]["version"] == 1 and p["latest"]["errors"] == 0
    assert p["latest"]["plan_digest"] == rules_dsl.load(SSH, filename="ssh.bw").plan.digest
    r = await t.token.put(f"{t.base}/policies/{p['id']}", json={"source": SSH + "\npass tcp dport 99999\n"})
    v2 = (await r.get_json())["latest"]
    assert v2["version"] == 2 and v2["errors"] >= 1 and v2["plan_digest"] is None
    assert v2["diagnostics"][0]["line"] > 0 and v2["diagnostics"][0]["rendered"]
    versions = (await (await t.token.get(f"{t.base}/policies/{p['id']}/versions")).get_json())["versions"]
    assert [v["version"] for v in versions] == [1, 2]
    r = await t.token.post(t.base + "/deployments", json={"policy_id": p["id"], "labels": ["x"]})
    assert r.status_code in (400, 409)  # errors cannot be deployed (and no agent has label x)
    r = await t.token.get(f"{t.base}/policies/{p['id']}/versions/1")
    assert (await r.get_json())["source"] == SSH


async def test_long_poll_wakes_on_a_list_change(hub):
    t = await hub.tenant()
    a = await enroll(t)
    await a.desired()
    r = await t.token.post(t.base + "/lists", json={"name": "bad", "kind": "deny"})
    list_path = f"{t.base}/lists/{(await r.get_json())['id']}"
    await a.desired()
    assert await a.desired(wait_s=0.2) is None  # nothing new: a 204 after the wait
    # The poll would answer None (204) only after its full minute: a document well before that
    # is the change waking it, with no clock asserted (the suite runs on loaded parallel workers).
    waiter = asyncio.create_task(a.desired(wait_s=60))
    await asyncio.sleep(0.2)
    assert not waiter.done()
    await t.token.post(list_path + "/entries", json={"add": [{"network": "203.0.113.7/32"}]})
    doc = await asyncio.wait_for(waiter, 30)
    assert doc is not None and doc["lists"][0]["mode"] == "delta" and unpacked(doc["lists"][0]["added"]) == ["203.0.113.7"]
    assert hub.rt.notifier.waiting == 0


async def test_deployment_plan_digest_and_dry_run(hub):
    t = await hub.tenant()
    a = await enroll(t)
    p = await _policy(t)
    r = await t.token.post(t.base + "/deployments", json={"policy_id": p["id"], "agent_ids": [a.id], "dry_run": True})
    d = await r.get_json()
    assert d["digest"] == p["latest"]["plan_digest"] and d["monitor"] is True
    doc = await a.desired()
    assert doc["mode"] == "monitor" and doc["deployment"]["digest"] == d["digest"]
    import rules_dsl

    assert rules_dsl.Plan.from_json(json.dumps(doc["plan"])).digest == d["digest"]
    a.digest = d["digest"]
    await a.report(applied_digest=d["digest"], mode="monitor")
    r = await t.token.get(f"{t.base}/deployments/{d['id']}")
    assert (await r.get_json())["state"] == "complete"
    # The plan is not resent to an agent that already runs it (here: after its restart).
    a.etag = None
    doc = await a.desired()
    assert doc["mode"] == "monitor" and "plan" not in doc


async def test_canary_rollout_then_the_rest(hub):
    t = await hub.tenant()
    c = await enroll(t, ["web"], "canary")
    rest = [await enroll(t, ["web"], f"web{i}") for i in range(2)]
    p = await _policy(t)
    r = await t.token.post(t.base + "/deployments", json={"policy_id": p["id"], "labels": ["web"],
                                                           "canary_agent_ids": [c.id]})
    d = await r.get_json()
    assert d["state"] == "canary"
    assert (await c.desired())["mode"] == "enforce"
    assert (await rest[0].desired())["mode"] == "none"
    await c.report(applied_digest=d["digest"], healthy=True)
    assert (await rest[0].desired())["mode"] == "enforce"
    for agent in rest:
        await agent.report(applied_digest=d["digest"])
    d = await (await t.token.get(f"{t.base}/deployments/{d['id']}")).get_json()
    assert d["state"] == "complete" and {x["status"] for x in d["targets"]} == {"applied"}


async def test_canary_failure_stops_and_rolls_back_then_rollback_by_digest(hub):
    t = await hub.tenant()
    c = await enroll(t, ["web"], "canary")
    other = await enroll(t, ["web"], "web2")
    p1 = await _policy(t)
    r = await t.token.post(t.base + "/deployments", json={"policy_id": p1["id"], "labels": ["web"]})
    d1 = await r.get_json()
    for agent in (c, other):
        await agent.report(applied_digest=d1["digest"])
    p2 = await _policy(t, WEB, "web")
    r = await t.token.post(t.base + "/deployments", json={"policy_id": p2["id"], "labels": ["web"],
                                                           "canary_agent_ids": [c.id]})
    d2 = await r.get_json()
    assert (await c.desired())["deployment"]["id"] == d2["id"]
    await c.report(failed_digest=d2["digest"], healthy=False, errors=["verifier rejected"])
    d2 = await (await t.token.get(f"{t.base}/deployments/{d2['id']}")).get_json()
    assert d2["state"] == "failed"
    assert (await c.desired())["deployment"]["id"] == d1["id"]  # canary back on the old Plan
    assert (await other.desired())["deployment"]["id"] == d1["id"]  # never touched
    r = await t.token.post(f"{t.base}/deployments/{d1['id']}/rollback", json={})
    d3 = await r.get_json()
    assert d3["digest"] == d1["digest"] and d3["rollback_of"] == d1["id"] and d3["id"] != d1["id"]


async def _tamper(policy_id: str, change) -> None:
    """The stored Plan JSON of a policy's latest version edited behind the API's back (what a
    rollback sends as it was)."""
    from hub.models import PolicyVersion

    version = await PolicyVersion.filter(policy_id=policy_id).order_by("-version").first()
    doc = json.loads(version.plan_json)
    change(doc)
    await PolicyVersion.filter(id=version.id).update(plan_json=json.dumps(doc))


async def test_the_plan_a_deployment_sends_is_judged_itself_nft_part_and_lockout(tmp_path):
    """The source still compiles to a safe Plan; the stored JSON is what goes out, so that
    is what the guard judges: a nat chain, or a stateful drop of the admins' SSH, is refused."""
    from tests.hub.harness import HubHarness

    async with HubHarness(tmp_path, admin_prefixes="198.51.100.0/24") as hub:
        t = await hub.tenant()
        a = await enroll(t)
        p = await _policy(t)
        nat = {"add": {"chain": {"family": "inet", "table": "bulwark", "name": "nat", "type": "nat",
                                 "hook": "prerouting", "prio": -100, "policy": "accept"}}}
        await _tamper(p["id"], lambda d: d["nft"]["nftables"].append(nat))
        r = await t.token.post(t.base + "/deployments", json={"policy_id": p["id"], "agent_ids": [a.id]})
        body = await r.get_json()
        assert r.status_code == 409 and "not one the compiler writes" in body["message"], body
        assert "chain 'nat'" in body["message"]

        def drop_ssh(doc):
            doc["nft"]["nftables"] = [c for c in doc["nft"]["nftables"] if c != nat]
            doc["nft"]["nftables"].append({"add": {"rule": {
                "family": "inet", "table": "bulwark", "chain": "input", "expr": [
                    {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                               "right": 22}}, {"drop": None}]}}})
        await _tamper(p["id"], drop_ssh)
        r = await t.token.post(t.base + "/deployments", json={"policy_id": p["id"], "agent_ids": [a.id]})
        body = await r.get_json()
        assert r.status_code == 409 and "would lock the operator out" in body["message"], body
        assert "nft rule" in body["message"] and "SSH (port 22) from 198.51.100.0/24" in body["message"]


async def test_a_policy_with_the_guard_off_still_deploys_but_its_nft_part_is_checked(tmp_path):
    from tests.hub.harness import HubHarness

    source = 'policy "off"\ndefault pass\nlockout-guard off\nstateful { drop tcp dport 22 }\n'
    async with HubHarness(tmp_path, admin_prefixes="198.51.100.0/24") as hub:
        t = await hub.tenant()
        a = await enroll(t)
        p = await _policy(t, source, "off")
        r = await t.token.post(t.base + "/deployments", json={"policy_id": p["id"], "agent_ids": [a.id]})
        assert r.status_code == 201, await r.get_json()
        await _tamper(p["id"], lambda d: d["nft"]["nftables"].append(
            {"add": {"rule": {"family": "inet", "table": "bulwark", "chain": "input",
                              "expr": [{"queue": {"num": 0}}]}}}))
        r = await t.token.post(t.base + "/deployments", json={"policy_id": p["id"], "agent_ids": [a.id]})
        assert r.status_code == 409 and "statement 'queue'" in (await r.get_json())["message"]
async def test_canaries_reporting_at_once_make_one_transition_and_one_audit_entry(hub):
    from hub.models import AuditEntry

    t = await hub.tenant()
    canaries = [await enroll(t, ["web"], f"canary{i}") for i in range(5)]
    rest = await enroll(t, ["web"], "web")
    p = await _policy(t)
    r = await t.token.post(t.base + "/deployments", json={"policy_id": p["id"], "labels": ["web"],
                                                           "canary_agent_ids": [c.id for c in canaries]})
    d = await r.get_json()
    await asyncio.gather(*(c.report(applied_digest=d["digest"], healthy=True) for c in canaries))
    state = await (await t.token.get(f"{t.base}/deployments/{d['id']}")).get_json()
    assert state["state"] == "released"
    assert await AuditEntry.filter(action="deploy.released", target=d["id"]).count() == 1
    assert (await rest.desired())["deployment"]["id"] == d["id"]


async def test_a_deployment_that_fails_midway_leaves_nothing_behind(hub, monkeypatch):
    """Create is one transaction: when its audit entry cannot be written, no deployment,
    no target and no moved agent pointer remain."""
    from hub.models import Agent, Deployment, DeploymentTarget

    t = await hub.tenant()
    a = await enroll(t, ["web"], "web")
    p = await _policy(t)

    async def broken(**kw):
        raise OSError("disk full")

    monkeypatch.setattr(hub.rt.audit, "append", broken)
    try:
        r = await t.token.post(t.base + "/deployments", json={"policy_id": p["id"], "labels": ["web"]})
        assert r.status_code >= 500
    except OSError:
        pass  # the test client may re-raise what the app did not handle
    assert await Deployment.all().count() == 0
    assert await DeploymentTarget.all().count() == 0
    assert (await Agent.get(id=a.id)).deployment_id is None

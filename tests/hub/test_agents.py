from __future__ import annotations

import datetime as dt

from hub.models import Agent, JoinToken
from tests.hub.harness import enroll


async def test_enrolment_with_a_single_use_join_token(hub):
    t = await hub.tenant()
    r = await t.token.post(t.base + "/join-tokens", json={"ttl_s": 600, "labels": ["web"]})
    join = (await r.get_json())["token"]
    inv = {"hostname": "web1", "xdp_mode": "native"}
    client = hub.client()
    r = await client.post("/agent/v1/enroll", json={"join_token": join, "inventory": inv})
    assert r.status_code == 201
    body = await r.get_json()
    agent = await Agent.get(id=body["agent_id"])
    assert agent.tenant_id == t.id and agent.labels == ["web"]
    assert body["credential"].split("_", 2)[2] not in agent.credential_hash
    r = await client.post("/agent/v1/enroll", json={"join_token": join, "inventory": inv})
    assert r.status_code == 401  # used


async def test_join_tokens_live_at_most_an_hour_and_expire(hub):
    t = await hub.tenant()
    r = await t.token.post(t.base + "/join-tokens", json={"ttl_s": 7200})
    assert r.status_code == 400
    r = await t.token.post(t.base + "/join-tokens", json={"ttl_s": 60})
    join = (await r.get_json())["token"]
    await JoinToken.filter(tenant_id=t.id).update(expires_at=dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc))
    r = await hub.client().post("/agent/v1/enroll", json={"join_token": join, "inventory": {}})
    assert r.status_code == 401


async def test_inventory_labels_and_listing(hub):
    t = await hub.tenant()
    a = await enroll(t, ["web"])
    r = await t.token.get(f"{t.base}/agents/{a.id}")
    body = await r.get_json()
    assert body["hostname"] == "web1"
    assert body["inventory"]["xdp_mode"] == "native"
    assert body["inventory"]["interfaces"][0]["name"] == "eth0"
    r = await t.token.put(f"{t.base}/agents/{a.id}/labels", json={"labels": ["edge", "web"]})
    assert (await r.get_json())["labels"] == ["edge", "web"]
    r = await t.token.put(f"{t.base}/agents/{a.id}/labels", json={"labels": ["Bad Label"]})
    assert r.status_code == 400
    await a.report(applied_digest="a" * 64, list_revisions={"x": 3}, drift=["nft table edited"])
    body = await (await t.token.get(f"{t.base}/agents/{a.id}")).get_json()
    assert body["applied_digest"] == "a" * 64
    assert body["status"]["drift"] == ["nft table edited"]
    assert body["last_seen_at"] is not None


async def test_rotate_and_revoke_take_effect_at_once(hub):
    t = await hub.tenant()
    a = await enroll(t)
    assert await a.desired() is not None
    r = await t.owner.post(f"{t.base}/agents/{a.id}/rotate")
    new = (await r.get_json())["credential"]
    assert (await a.post("/agent/v1/desired", json={})).status_code == 401
    a.token = new
    assert (await a.post("/agent/v1/desired", json={})).status_code == 200
    assert (await t.owner.post(f"{t.base}/agents/{a.id}/revoke")).status_code == 200
    r = await a.post("/agent/v1/desired", json={})
    assert r.status_code == 401 and "revoked" in (await r.get_json())["message"]


async def test_disable_deactivates_and_enable_restores(hub):
    t = await hub.tenant()
    a = await enroll(t, ["web"])
    doc = await a.desired()
    assert doc["mode"] == "none"
    await t.token.post(f"{t.base}/agents/{a.id}/disable")
    assert (await a.desired())["mode"] == "deactivate"
    r = await t.token.post(f"{t.base}/protection", json={"label": "web", "enabled": True})
    assert (await r.get_json())["agents"] == [a.id]
    assert (await a.desired())["mode"] == "none"
    actions = [e["action"] for e in (await (await t.token.get(f"{t.base}/audit")).get_json())["entries"]]
    assert "agent.disable" in actions and "agent.enable" in actions


async def test_protocol_rejects_malformed_requests_without_changes(hub):
    t = await hub.tenant()
    a = await enroll(t)
    r = await a.post("/agent/v1/status", json={"applied_digest": "not-a-digest"})
    assert r.status_code == 400
    r = await a.post("/agent/v1/status", json={"surprise": 1})
    assert r.status_code == 400
    r = await a.post("/agent/v1/metrics", json={"points": [{"ts": 1, "rule": "r", "packets": -1, "bytes": 0}]})
    assert r.status_code == 400
    agent = await Agent.get(id=a.id)
    assert agent.applied_digest is None and agent.last_status == {}
    r = await hub.client().post("/agent/v1/status", json={})
    assert r.status_code == 401


MACHINE = "0123456789abcdef0123456789abcdef"


async def _enrol(hub, t, inventory: dict, **extra):
    r = await t.token.post(t.base + "/join-tokens", json={"ttl_s": 600})
    join = (await r.get_json())["token"]
    r = await hub.client().post("/agent/v1/enroll", json={"join_token": join, "inventory": inventory, **extra})
    return r, join


async def test_a_cloned_machine_is_a_clear_409_until_forced(hub):
    t = await hub.tenant()
    r, _ = await _enrol(hub, t, {"hostname": "web1", "machine_id": MACHINE})
    assert r.status_code == 201
    first = (await r.get_json())["agent_id"]
    r, join = await _enrol(hub, t, {"hostname": "web1-clone", "machine_id": MACHINE})
    assert r.status_code == 409
    body = await r.get_data(as_text=True)
    assert first in body and "--force" in body
    assert (await JoinToken.get(secret_hash__isnull=False, used_at__isnull=True, tenant_id=t.id)) is not None
    r = await hub.client().post("/agent/v1/enroll", json={"join_token": join, "force": True,
                                                          "inventory": {"machine_id": MACHINE}})
    assert r.status_code == 201  # the refused attempt did not use the token up
    r, _ = await _enrol(hub, t, {"machine_id": "f" * 32})
    assert r.status_code == 201  # another machine
    other = await hub.tenant("other")
    r, _ = await _enrol(hub, other, {"machine_id": MACHINE})
    assert r.status_code == 201  # the clash is within a tenant only


async def test_a_revoked_agent_does_not_block_its_machine(hub):
    t = await hub.tenant()
    r, _ = await _enrol(hub, t, {"machine_id": MACHINE})
    await Agent.filter(id=(await r.get_json())["agent_id"]).update(revoked_at=dt.datetime.now(dt.timezone.utc))
    r, _ = await _enrol(hub, t, {"machine_id": MACHINE})
    assert r.status_code == 201


async def test_a_malformed_machine_id_or_force_is_a_400(hub):
    t = await hub.tenant()
    for inventory, extra in [({"machine_id": "X" * 32}, {}), ({"machine_id": "a" * 10000}, {}),
                             ({"machine_id": ["a"]}, {}), ({"machine_id": MACHINE}, {"force": "yes please"})]:
        r, _ = await _enrol(hub, t, inventory, **extra)
        assert r.status_code == 400, (inventory, extra)

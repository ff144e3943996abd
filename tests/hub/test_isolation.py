"""Tenant isolation and token scopes, generated from the app's route table.

Every route under /api/v1/tenants/<tenant_id> is tried with tenant A's credentials
against tenant B's objects: each must answer 404 (never 403, 200 or 5xx, which would
tell A that B's object exists). A route added later is covered without editing this.
"""
from __future__ import annotations

import re
from pathlib import Path

from tests.hub.harness import enroll

PREFIX = "/api/v1/tenants/<uuid:tenant_id>"
POLICY = (Path(__file__).parents[2] / "examples" / "ssh.bw").read_text()


async def _populate(t):
    """One of each kind of object in tenant t; returns path parameter values."""
    agent = await enroll(t, ["web"])
    r = await t.token.post(t.base + "/policies", json={"name": "ssh", "source": POLICY})
    assert r.status_code == 201, await r.get_data(as_text=True)
    policy_id = (await r.get_json())["id"]
    r = await t.token.post(t.base + "/deployments", json={"policy_id": policy_id, "agent_ids": [agent.id]})
    assert r.status_code == 201, await r.get_data(as_text=True)
    deployment_id = (await r.get_json())["id"]
    r = await t.token.post(t.base + "/lists", json={"name": "bad", "kind": "deny"})
    list_id = (await r.get_json())["id"]
    r = await t.owner.get(t.base + "/tokens")
    token_id = (await r.get_json())["tokens"][0]["id"]
    r = await t.owner.get(t.base + "/members")
    member_id = (await r.get_json())["members"][0]["id"]
    r = await t.owner.post(t.base + "/alerts/channels", json={"kind": "email", "name": "ops", "target": "ops@example.com"})
    channel_id = (await r.get_json())["id"]
    from hub.models import OutboxMessage
    from hub.services import alerts

    await alerts.observe(t.hub.rt, t.id, "drift", "x", "drifted")
    message_id = str((await OutboxMessage.filter(tenant_id=t.id).first()).id)
    await t.owner.post(t.base + "/invitations", json={"email": f"invitee-{t.id}@example.com", "role": "viewer"})
    r = await t.owner.get(t.base + "/invitations")
    invitation_id = (await r.get_json())["invitations"][0]["id"]
    r = await t.token.get(t.base + "/join-tokens")
    join_token_id = (await r.get_json())["join_tokens"][0]["id"]
    import uuid

    from hub.services import captures

    wanted = await captures.request(t.hub.rt, t.id, uuid.UUID(agent.id), {"max_frames": 10, "max_seconds": 1, "max_bytes": 4096, "sample_every": 1})
    await captures.store(t.hub.rt, t.id, uuid.UUID(agent.id), wanted["id"], b"\xd4\xc3\xb2\xa1" + bytes(20))
    return {"capture_id": wanted["id"], "invitation_id": invitation_id, "join_token_id": join_token_id,"tenant_id": str(t.id), "agent_id": agent.id, "policy_id": policy_id,
            "deployment_id": deployment_id, "list_id": list_id, "token_id": token_id,
            "member_id": str(member_id), "version": "1", "channel_id": channel_id, "message_id": message_id,
            "kind": "drift"}


def _tenant_routes(app):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(PREFIX):
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield rule, method


def _fill(rule, values):
    def sub(m):
        name = m.group(1)
        assert name in values, f"{rule.rule}: the isolation test does not know <{name}>; add it"
        return values[name]

    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", sub, rule.rule)


async def test_tenant_a_gets_404_on_every_object_of_tenant_b(hub):
    a = await hub.tenant("a")
    b = await hub.tenant("b")
    ids_a = await _populate(a)
    ids_b = await _populate(b)
    routes = list(_tenant_routes(hub.app))
    assert len(routes) > 30
    mixed = {**ids_a, **{k: v for k, v in ids_b.items() if k != "tenant_id"}}
    failures = []
    for rule, method in routes:
        view = hub.app.view_functions[rule.endpoint]
        assert hasattr(view, "bulwark_permission"), f"{rule.rule} is not a tenant_route"
        kw = {"json": {}} if method != "GET" else {}
        # B's tenant with A's token and with A's signed-in owner.
        for who, caller in (("token", a.token), ("session", a.owner)):
            path = _fill(rule, ids_b)
            r = await caller.request(method, path, **kw)
            if r.status_code != 404:
                failures.append(f"{who} {method} {path} -> {r.status_code}")
        # A's own tenant, but B's object ids.
        if any(k in rule.rule for k in ("agent_id", "policy_id", "deployment_id", "list_id", "token_id", "member_id",
                                        "channel_id", "message_id", "invitation_id", "join_token_id")):
            path = _fill(rule, mixed)
            r = await a.owner.request(method, path, **kw)
            if r.status_code != 404:
                failures.append(f"mixed {method} {path} -> {r.status_code}")
    assert failures == []


async def test_query_parameters_do_not_reach_other_tenants(hub):
    a = await hub.tenant("a")
    b = await hub.tenant("b")
    agent_b = await enroll(b)
    r = await a.token.get(f"{a.base}/metrics?agent_id={agent_b.id}")
    assert r.status_code == 404
    r = await a.token.post(a.base + "/deployments", json={"policy_id": "00000000-0000-0000-0000-000000000000"})
    assert r.status_code == 404


async def test_a_read_token_cannot_write(hub):
    a = await hub.tenant("a")
    ids = await _populate(a)
    reader = await a.make_token(["read"])
    checked = 0
    for rule, method in _tenant_routes(hub.app):
        view = hub.app.view_functions[rule.endpoint]
        path = _fill(rule, ids)
        if path.endswith("/stream"):
            path += "?max_s=0.2"  # the SSE stream would otherwise stay open
        r = await reader.request(method, path, **({"json": {}} if method != "GET" else {}))
        if view.bulwark_permission == "read":
            assert r.status_code != 403, path
        else:
            assert method != "GET" or view.bulwark_permission in ("admin", "billing"), f"GET {path} needs more than read"
            assert r.status_code == 403, f"{method} {path} -> {r.status_code}"
            checked += 1
    assert checked > 15

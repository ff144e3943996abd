"""Marketplace and library through the API: publish (operators, the pipeline with the
guard), browse, preview, install, upgrade with a diff; library search, tags, clone,
diff, deploy with a canary; hostile input is a 4xx, never a 500 or another tenant's."""
from __future__ import annotations

from pathlib import Path

import pytest

from hub.services.marketplace import MAX_TEMPLATE_CHARS
from rules_dsl import templates as rules_templates
from tests.hub.harness import enroll
from tests.hub.test_hardening import _enable_totp
from tests.templates.test_templates import SMALL

pytestmark = pytest.mark.kernel  # publishing runs the guard (BPF_PROG_TEST_RUN)
SHIPPED = Path(__file__).resolve().parents[2] / "rules_dsl" / "shipped"
T = "/api/v1/marketplace/templates"


async def operator(hub):
    admin = await hub.user(platform_admin=True)
    s = await hub.login(admin.email)
    await _enable_totp(s)
    return s


async def published(hub, *sources):
    op = await operator(hub)
    for source in sources:
        r = await op.post(T, json={"source": source})
        assert r.status_code == 201, await r.get_data(as_text=True)
    return op


def test_the_size_limits_agree():
    assert MAX_TEMPLATE_CHARS == rules_templates.MAX_TEMPLATE_CHARS


async def test_only_operators_with_2fa_publish_and_a_broken_template_is_refused_by_name(hub):
    t = await hub.tenant()
    r = await t.owner.post(T, json={"source": SMALL})
    assert r.status_code == 403
    r = await t.token.post(T, json={"source": SMALL})
    assert r.status_code == 403
    op = await operator(hub)
    broken = SMALL.replace("limit {{rate}}/second per src", "limit {{rate}}/second per src limit 500/second global")
    r = await op.post(T, json={"source": broken})
    assert r.status_code == 422
    body = await r.get_json()
    assert "small v3 with rate=1000" in body["message"] and "template.toml:14" in body["message"]
    assert any("guard" in d and "BPF_PROG_TEST_RUN" in d for d in body["details"])
    assert (await op.get(T + "/small")).status_code == 404  # nothing was published
    r = await op.post(T, json={"source": SMALL})
    assert r.status_code == 201
    body = await r.get_json()
    assert body["report"]["guard"] and body["report"]["vectors"] == 15 and body["versions"] == [3]
    r = await op.post(T, json={"source": SMALL})  # the same version again
    assert r.status_code == 409


HOSTILE_TEMPLATES = [
    "", "not toml = = =", "slug = 1", SMALL.replace("{{rate}}/second", "{{nope}}/second"),
    "x" * (MAX_TEMPLATE_CHARS + 1), "slug = \"a\"\n" + "a" * 100 + " = 1\n",
]


async def test_hostile_templates_are_4xx(hub):
    op = await operator(hub)
    for source in HOSTILE_TEMPLATES:
        r = await op.post(T, json={"source": source})
        assert 400 <= r.status_code < 500, await r.get_data(as_text=True)
    r = await op.post(T, data=b"\xff\xfe", headers={"Content-Type": "application/json"})
    assert r.status_code == 400


async def test_browse_preview_install_upgrade(hub):
    web = (SHIPPED / "web.toml").read_text()
    op = await published(hub, SMALL, web)
    t = await hub.tenant()
    r = await t.token.get(T + "?q=web")
    assert [x["slug"] for x in (await r.get_json())["templates"]] == ["web"]
    r = await t.token.get(T + "?tag=quic")
    assert [x["slug"] for x in (await r.get_json())["templates"]] == ["web"]
    detail = await (await t.token.get(T + "/web")).get_json()
    assert {p["name"] for p in detail["parameters"]} >= {"https_port", "admins", "syn_rate"}
    assert "SYN" in detail["why"]
    assert (await hub.client().get(T)).status_code == 401

    agent = await enroll(t, ["web"])
    r = await t.token.post(t.base + "/marketplace/preview",
                           json={"slug": "small", "parameters": {"rate": 20}, "agent_id": agent.id})
    assert r.status_code == 200, await r.get_data(as_text=True)
    body = await r.get_json()
    assert "limit 20/second" in body["source"] and body["plan_digest"] and "Policy 'small'" in body["explain"]
    assert body["running"]["source"] is None and body["diff"] is None

    r = await t.token.post(t.base + "/marketplace/install",
                           json={"slug": "small", "name": "game", "parameters": {"rate": 20}, "tags": ["game"]})
    assert r.status_code == 201, await r.get_data(as_text=True)
    entry = await r.get_json()
    assert entry["template"] == {"slug": "small", "version": 3,
                                 "parameters": {"ports": "27015-27030", "rate": "20", "admins": "198.51.100.0/24",
                                                "bans": "ban"}}
    r = await t.token.post(t.base + f"/library/{entry['policy_id']}/deploy", json={"agent_ids": [agent.id]})
    assert r.status_code == 201, await r.get_data(as_text=True)

    # what the agent runs is now the diff's left side
    r = await t.token.post(t.base + "/marketplace/preview",
                           json={"slug": "small", "parameters": {"rate": 30}, "agent_id": agent.id})
    body = await r.get_json()
    assert body["running"]["policy"] == "game" and "-pass udp dport 27015-27030 limit 20/second" in body["diff"]
    assert "+pass udp dport 27015-27030 limit 30/second" in body["diff"]

    # an upgrade shows its diff, keeps the parameters, and records the new version
    await op.post(T, json={"source": SMALL.replace("version = 3", "version = 4").replace(
        "pass tcp from @admins dport 22", "pass tcp from @admins dport { 22, 2222 }")})
    r = await t.token.get(t.base + f"/library/{entry['policy_id']}/upgrade")
    up = await r.get_json()
    assert (up["from_version"], up["to_version"]) == (3, 4)
    assert "+pass tcp from @admins dport { 22, 2222 }" in up["diff"] and "limit 20/second" in up["source"]
    r = await t.token.post(t.base + f"/library/{entry['policy_id']}/upgrade", json={})
    assert r.status_code == 200 and (await r.get_json())["template"]["version"] == 4
    assert (await r.get_json())["latest_version"] == 2
    r = await t.token.post(t.base + f"/library/{entry['policy_id']}/upgrade", json={})
    assert r.status_code == 409  # nothing left to upgrade


HOSTILE_PREVIEWS = [
    {"slug": "small", "parameters": {"rate": 5}},
    {"slug": "small", "parameters": {"rate": "1; drop"}},
    {"slug": "small", "parameters": {"bans": 'x" }\npass from any\n#'}},
    {"slug": "small", "parameters": {"admins": ["198.51.100.1/24"]}},
    {"slug": "small", "parameters": {"ports": "9" * 2000}},
    {"slug": "small", "parameters": {"nope": 1}},
    {"slug": "small", "parameters": {f"p{i}": 1 for i in range(65)}},
    {"slug": "small", "parameters": {"rate": {"a": 1}}},
    {"slug": "small", "parameters": {"rate": None}, "version": 99},
    {"slug": "none"},
    {"slug": "../etc"},
    {"slug": "small", "agent_id": "00000000-0000-0000-0000-000000000000"},
    {"slug": "small", "extra": 1},
    {"slug": "small", "parameters": {"bans": "a\u0000"}},
]


async def test_hostile_previews_and_installs_are_4xx(hub):
    await published(hub, SMALL)
    t = await hub.tenant()
    for body in HOSTILE_PREVIEWS:
        for path in ("/marketplace/preview", "/marketplace/install"):
            r = await t.token.post(t.base + path, json={**body, **({"name": "x"} if "install" in path else {})})
            assert 400 <= r.status_code < 500, (body, path, r.status_code, await r.get_data(as_text=True))
    assert (await (await t.token.get(t.base + "/library")).get_json())["entries"] == []
    r = await t.token.post(t.base + "/marketplace/preview", json={"slug": "small", "parameters": {"rate": 5}})
    assert "rate" in str((await r.get_json())["details"])


async def test_library_search_tags_clone_diff_and_isolation(hub):
    await published(hub, SMALL)
    a, b = await hub.tenant("a"), await hub.tenant("b")
    r = await a.token.post(a.base + "/marketplace/install",
                           json={"slug": "small", "name": "game-eu", "description": "Frankfurt game box"})
    eu = (await r.get_json())["policy_id"]
    r = await a.token.post(a.base + "/policies", json={"name": "hand", "source": "policy \"h\"\ndefault pass\n"})
    hand = (await r.get_json())["id"]
    r = await a.token.put(a.base + f"/library/{hand}", json={"tags": ["prod", "web"], "description": "by hand"})
    assert r.status_code == 200 and (await r.get_json())["template"] is None
    assert (await a.token.put(a.base + f"/library/{hand}", json={"tags": ["Bad Tag"]})).status_code == 400
    names = lambda r: [e["name"] for e in r["entries"]]  # noqa: E731
    assert names(await (await a.token.get(a.base + "/library?q=frankfurt")).get_json()) == ["game-eu"]
    assert names(await (await a.token.get(a.base + "/library?q=small")).get_json()) == ["game-eu"]
    assert names(await (await a.token.get(a.base + "/library?tag=prod")).get_json()) == ["hand"]
    assert names(await (await a.token.get(a.base + "/library?q=%25")).get_json()) == []
    r = await a.token.post(a.base + f"/library/{eu}/clone", json={"name": "game-us"})
    assert r.status_code == 201
    us = await r.get_json()
    assert us["cloned_from"] == eu and us["template"]["slug"] == "small"
    await a.token.put(a.base + f"/policies/{us['policy_id']}",
                      json={"source": (await (await a.token.get(a.base + f"/policies/{eu}")).get_json())
                            ["latest"]["source"].replace("per src", "per src block 30s")})
    r = await a.token.get(a.base + f"/library/{us['policy_id']}/diff")
    d = await r.get_json()
    assert (d["base"]["version"], d["target"]["version"]) == (1, 2) and "+pass udp" in d["diff"]
    r = await a.token.get(a.base + f"/library/{eu}/diff?other={us['policy_id']}")
    assert "block 30s" in (await r.get_json())["diff"]
    assert (await a.token.get(a.base + f"/library/{eu}/diff?from_version=9")).status_code == 404
    assert (await a.token.get(a.base + f"/library/{eu}/diff?from_version=x")).status_code == 400
    # another tenant's entries are absent, by path and by query
    assert (await b.token.get(b.base + f"/library/{eu}")).status_code == 404
    assert (await a.token.get(b.base + "/library")).status_code == 404
    r = await b.token.post(b.base + "/library", json={})
    assert r.status_code == 405
    r = await a.token.get(a.base + f"/library/{eu}/diff?other={(await _b_policy(b))}")
    assert r.status_code == 404
    assert names(await (await b.token.get(b.base + "/library?q=game")).get_json()) == []
    assert (await a.token.post(a.base + f"/library/{hand}/upgrade", json={})).status_code == 409


async def _b_policy(b):
    r = await b.token.post(b.base + "/policies", json={"name": "bp", "source": "policy \"b\"\ndefault pass\n"})
    return (await r.get_json())["id"]


async def test_deploy_from_the_library_with_a_canary_and_roll_back(hub):
    await published(hub, SMALL)
    t = await hub.tenant()
    one, two = await enroll(t, ["game"], "g1"), await enroll(t, ["game"], "g2")
    r = await t.token.post(t.base + "/marketplace/install", json={"slug": "small", "name": "game"})
    pid = (await r.get_json())["policy_id"]
    r = await t.token.post(t.base + f"/library/{pid}/deploy",
                           json={"labels": ["game"], "canary_agent_ids": [one.id]})
    assert r.status_code == 201, await r.get_data(as_text=True)
    d = await r.get_json()
    assert d["state"] == "canary" and {x["agent_id"] for x in d["targets"] if x["canary"]} == {one.id}
    r = await t.token.post(t.base + f"/deployments/{d['id']}/rollback", json={})
    assert r.status_code == 201
    r = await t.token.post(t.base + f"/library/{pid}/deploy", json={"agent_ids": [], "labels": []})
    assert r.status_code == 400
    r = await t.token.post(t.base + f"/library/{pid}/deploy", json={"version": 7, "labels": ["game"]})
    assert r.status_code == 404
    del two


async def test_concurrent_publications_and_installs_are_one_success_and_conflicts(hub):
    import asyncio

    op = await operator(hub)
    answers = await asyncio.gather(*(op.post(T, json={"source": SMALL}) for _ in range(3)))
    assert sorted(r.status_code for r in answers) == [201, 409, 409]
    t = await hub.tenant()
    answers = await asyncio.gather(*(t.token.post(t.base + "/marketplace/install",
                                                  json={"slug": "small", "name": "same"}) for _ in range(3)))
    codes = sorted(r.status_code for r in answers)
    assert codes[0] == 201 and all(c == 409 for c in codes[1:]), codes
    assert len((await (await t.token.get(t.base + "/library")).get_json())["entries"]) == 1


async def test_without_a_guard_nothing_is_published(hub, monkeypatch):
    """A hub that cannot load the guard (no root, no BPF) refuses to publish (503) rather
    than publish a template the kernel never ran."""
    import bpf.vectors
    from bpf.errors import BpfError

    def refused(*_):
        raise BpfError(1, "Operation not permitted")

    monkeypatch.setattr(bpf.vectors, "run_in_guard", refused)
    op = await operator(hub)
    r = await op.post(T, json={"source": SMALL})
    assert r.status_code == 503 and "cannot load the guard" in (await r.get_json())["message"]
    assert (await op.get(T + "/small")).status_code == 404

"""Renaming and deleting policies, lists and agents; entry search and CSV export; audit
filters; the warning for a hub list that does not exist. Each boundary with hostile input:
a clear 4xx, never a 5xx, and the other tenant untouched."""
from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

import pytest

from tests.hub.harness import enroll

EXAMPLES = Path(__file__).parents[2] / "examples"
SSH = (EXAMPLES / "ssh.bw").read_text()
WEB = (EXAMPLES / "web.bw").read_text()


async def _policy(t, name="ssh", source=SSH):
    r = await t.token.post(t.base + "/policies", json={"name": name, "source": source})
    assert r.status_code == 201, await r.get_data(as_text=True)
    return await r.get_json()


async def _list(t, name="bad", entries=""):
    r = await t.token.post(t.base + "/lists", json={"name": name, "kind": "deny"})
    assert r.status_code == 201, await r.get_data(as_text=True)
    list_id = (await r.get_json())["id"]
    if entries:
        r = await t.token.post(f"{t.base}/lists/{list_id}/import?format=csv", data=entries.encode(),
                               headers={"Content-Type": "text/csv"})
        assert r.status_code == 200, await r.get_data(as_text=True)
    return list_id


async def test_a_policy_naming_a_missing_hub_list_is_saved_with_a_warning_at_the_reference(hub):
    a = await hub.tenant("a")
    saved = await _policy(a, "web", WEB)
    line = next(i for i, text in enumerate(WEB.splitlines(), 1) if 'list "crowdsec-ban"' in text
                and text.startswith("set"))
    warnings = [d for d in saved["latest"]["diagnostics"] if "crowdsec-ban" in d["message"]]
    assert [(d["severity"], d["line"]) for d in warnings] == [("warning", line)]
    assert saved["latest"]["errors"] == 0 and saved["latest"]["plan_digest"]  # still deployable
    assert saved["latest"]["warnings"] >= 1
    await _list(a, "crowdsec-ban")
    r = await a.token.put(f"{a.base}/policies/{saved['id']}", json={"source": WEB})
    again = (await r.get_json())["latest"]["diagnostics"]
    assert not [d for d in again if "crowdsec-ban" in d["message"]]


async def test_another_tenants_list_of_that_name_does_not_silence_the_warning(hub):
    a, b = await hub.tenant("a"), await hub.tenant("b")
    await _list(b, "crowdsec-ban")
    saved = await _policy(a, "web", WEB)
    assert [d for d in saved["latest"]["diagnostics"] if "crowdsec-ban" in d["message"]]


async def test_rename_and_delete_a_policy(hub):
    a, b = await hub.tenant("a"), await hub.tenant("b")
    p = await _policy(a)
    other = await _policy(a, "other")
    theirs = await _policy(b)
    url = f"{a.base}/policies/{p['id']}"
    for body, status in [({"name": "other"}, 409), ({"name": ""}, 400), ({"name": "x" * 201}, 400),
                         ({"name": "a b"}, 400), ({"name": "a\u0000b"}, 400), ({"name": 5}, 400),
                         ({"name": "ok", "extra": 1}, 400), ({}, 400), ([], 400)]:
        r = await a.token.patch(url, json=body)
        assert r.status_code == status, (body, r.status_code, await r.get_data(as_text=True))
    r = await a.token.patch(url, data=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    r = await a.token.patch(url, json={"name": "renamed"})
    assert r.status_code == 200 and (await r.get_json())["name"] == "renamed"
    r = await a.token.delete(url)
    assert r.status_code == 200 and (await r.get_json())["deleted"] is True
    assert (await a.token.get(url)).status_code == 404
    assert (await a.token.delete(url)).status_code == 404
    assert (await a.token.get(f"{a.base}/policies/{other['id']}")).status_code == 200
    r = await b.token.get(f"{b.base}/policies/{theirs['id']}")
    assert r.status_code == 200 and (await r.get_json())["name"] == "ssh"  # B's same-named policy untouched
    actions = [e["action"] for e in (await (await a.token.get(f"{a.base}/audit")).get_json())["entries"]]
    assert "policy.rename" in actions and "policy.delete" in actions


async def test_concurrent_renames_to_one_name_give_one_winner_and_409s(hub):
    a = await hub.tenant("a")
    ids = [(await _policy(a, f"p{i}"))["id"] for i in range(4)]
    answers = await asyncio.gather(*(a.token.patch(f"{a.base}/policies/{i}", json={"name": "same"}) for i in ids))
    statuses = sorted(r.status_code for r in answers)
    assert statuses.count(200) == 1 and set(statuses) == {200, 409}, statuses


async def test_a_deployment_keeps_its_plan_when_its_policy_is_deleted(hub):
    a = await hub.tenant("a")
    agent = await enroll(a)
    p = await _policy(a)
    r = await a.token.post(a.base + "/deployments", json={"policy_id": p["id"], "agent_ids": [agent.id]})
    deployment = (await r.get_json())["id"]
    assert (await a.token.delete(f"{a.base}/policies/{p['id']}")).status_code == 200
    r = await a.token.get(f"{a.base}/deployments/{deployment}/plan")
    assert r.status_code == 200
    r = await a.token.post(f"{a.base}/deployments/{deployment}/rollback", json={})
    assert r.status_code in (200, 201), await r.get_data(as_text=True)


async def test_a_list_named_by_a_deployed_policy_cannot_be_renamed_or_deleted(hub):
    a = await hub.tenant("a")
    agent = await enroll(a)
    list_id = await _list(a, "crowdsec-ban")
    spare = await _list(a, "spare")
    p = await _policy(a, "web", WEB)
    r = await a.token.post(a.base + "/deployments", json={"policy_id": p["id"], "agent_ids": [agent.id]})
    assert r.status_code == 201, await r.get_data(as_text=True)
    url = f"{a.base}/lists/{list_id}"
    r = await a.token.patch(url, json={"name": "renamed"})
    assert r.status_code == 409 and "deployed" in (await r.get_json())["message"]
    assert (await a.token.delete(url)).status_code == 409
    assert (await a.token.get(url)).status_code == 200
    assert (await a.token.patch(f"{a.base}/lists/{spare}", json={"name": "crowdsec-ban"})).status_code == 409
    assert (await a.token.patch(f"{a.base}/lists/{spare}", json={"name": "x" * 201})).status_code == 400
    assert (await a.token.patch(f"{a.base}/lists/{spare}", json={"name": "extra"})).status_code == 200
    assert (await a.token.delete(f"{a.base}/lists/{spare}")).status_code == 200
    assert (await a.token.get(f"{a.base}/lists/{spare}")).status_code == 404


async def test_agents_are_renamed_and_only_a_revoked_one_is_deleted(hub):
    a = await hub.tenant("a")
    agent = await enroll(a)
    url = f"{a.base}/agents/{agent.id}"
    for body in ({"name": ""}, {"name": "x" * 201}, {"name": None}, {"hostname": "x"}):
        assert (await a.token.patch(url, json=body)).status_code == 400, body
    r = await a.token.patch(url, json={"name": "edge-renamed"})
    assert r.status_code == 200 and (await r.get_json())["hostname"] == "edge-renamed"
    r = await a.owner.delete(url)
    assert r.status_code == 409 and "revoke" in (await r.get_json())["message"]
    assert (await a.owner.post(url + "/revoke")).status_code == 200
    assert (await a.owner.delete(url)).status_code == 200
    assert (await a.token.get(url)).status_code == 404


CSV_BODY = ("network,expires_at,comment\n"
            "10.1.0.1,,plain\n10.1.0.2,,=HYPERLINK(\"http://evil.example\")\n10.1.2.3,,+1\n"
            "10.2.0.1,,-2\n10.2.0.2,,@SUM(A1)\n2001:db8::1,4102444800,v6\n")


async def test_entry_search_and_paging(hub):
    a = await hub.tenant("a")
    list_id = await _list(a, "bad", CSV_BODY.split("\n", 1)[1])
    url = f"{a.base}/lists/{list_id}/entries"
    body = await (await a.token.get(url + "?q=10.1.")).get_json()
    assert body["total"] == 3 and [e["network"] for e in body["entries"]] == ["10.1.0.1", "10.1.0.2", "10.1.2.3"]
    body = await (await a.token.get(url + "?q=2001:DB8:")).get_json()  # case does not matter
    assert body["total"] == 1 and body["entries"][0]["expires_at"] == 4102444800
    body = await (await a.token.get(url + "?q=10.&offset=1&limit=2")).get_json()
    assert body["total"] == 5 and len(body["entries"]) == 2
    assert (await (await a.token.get(url + "?offset=100")).get_json())["entries"] == []
    for hostile in ("x" * 65, "%00", "'; DROP TABLE ip_entry; --", "%ff%fe", "\\", "%", "_"):
        r = await a.token.get(url + "?q=" + hostile)
        assert r.status_code in (200, 400), (hostile, r.status_code)
        if r.status_code == 200:
            assert (await r.get_json())["total"] == 0, hostile
    for bad in ("?limit=0", "?limit=10001", "?offset=-1", "?offset=99999999999999999999", "?q=a&q=b&zzz=1"):
        assert (await a.token.get(url + bad)).status_code == 400, bad


async def test_csv_export_neutralises_formulas_and_stays_importable(hub):
    a, b = await hub.tenant("a"), await hub.tenant("b")
    list_id = await _list(a, "bad", CSV_BODY.split("\n", 1)[1])
    r = await a.token.get(f"{a.base}/lists/{list_id}/export")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    assert 'filename="bad.csv"' in r.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(await r.get_data(as_text=True))))
    assert rows[0] == ["network", "expires_at", "comment"]
    comments = {row[0]: row[2] for row in rows[1:]}
    assert comments["10.1.0.2"] == "'=HYPERLINK(\"http://evil.example\")"
    assert comments["10.1.2.3"] == "'+1" and comments["10.2.0.1"] == "'-2" and comments["10.2.0.2"] == "'@SUM(A1)"
    assert comments["10.1.0.1"] == "plain"
    assert not [c for row in rows[1:] for c in row if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    r = await a.token.get(f"{a.base}/lists/{list_id}/export?q=10.2.")
    assert len(list(csv.reader(io.StringIO(await r.get_data(as_text=True))))) == 3
    assert (await b.token.get(f"{b.base}/lists/{list_id}/export")).status_code == 404
    assert (await a.token.get(f"{a.base}/lists/{list_id}/export?q=" + "y" * 65)).status_code == 400


@pytest.mark.parametrize("value", ["=1+1", "+x", "-x", "@x", "\tx", "\rx"])
def test_every_formula_start_is_neutralised(value):
    from hub.services.list_browse import safe_cell

    assert safe_cell(value) == "'" + value
    assert safe_cell("10.0.0.1") == "10.0.0.1" and safe_cell(None) == ""


async def test_audit_filters(hub):
    a, b = await hub.tenant("a"), await hub.tenant("b")
    await _policy(a)
    await _list(a, "bad")
    await _list(b, "theirs")
    url = f"{a.base}/audit"
    entries = (await (await a.token.get(url + "?action=list.create")).get_json())["entries"]
    assert [e["action"] for e in entries] == ["list.create"]  # not B's
    entries = (await (await a.token.get(url + "?action=policy.")).get_json())["entries"]
    assert entries and all(e["action"].startswith("policy.") for e in entries)
    actor = entries[0]["actor"]
    entries = (await (await a.token.get(url + "?actor=" + actor)).get_json())["entries"]
    assert entries and {e["actor"] for e in entries} == {actor}
    assert (await (await a.token.get(url + "?actor=nobody")).get_json())["entries"] == []
    assert (await (await a.token.get(url + "?since=2999-01-01T00:00:00")).get_json())["entries"] == []
    assert (await (await a.token.get(url + "?until=2000-01-01T00:00:00Z")).get_json())["entries"] == []
    assert len((await (await a.token.get(url + "?since=2000-01-01&until=2999-01-01")).get_json())["entries"]) >= 2
    for bad in ("?since=yesterday", "?since=2026-01-02&until=2026-01-01", "?action=POLICY%20SAVE",
                "?action=" + "a" * 65, "?actor=" + "a" * 201, "?since=9999999999999999999", "?limit=0"):
        r = await a.token.get(url + bad)
        assert r.status_code == 400, (bad, r.status_code, await r.get_data(as_text=True))

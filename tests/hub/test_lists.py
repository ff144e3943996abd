from __future__ import annotations

import asyncio
import time

import pytest

from hub.services import lists
from tests.hub.harness import enroll, unpacked


async def _list(t, kind="deny"):
    r = await t.token.post(t.base + "/lists", json={"name": f"l-{kind}", "kind": kind})
    assert r.status_code == 201
    return f"{t.base}/lists/{(await r.get_json())['id']}"


async def test_entries_v4_v6_expiry_comment_and_revisions(hub):
    t = await hub.tenant()
    base = await _list(t)
    r = await t.token.post(base + "/entries", json={"add": [
        {"network": "192.0.2.1/32"}, {"network": "2001:db8::/32", "comment": "doc"},
        {"network": "198.51.100.0/24", "expires_at": int(time.time()) + 3600}]})
    assert (await r.get_json()) == {"revision": 1, "added": 3, "removed": 0, "entries": 3}
    r = await t.token.post(base + "/entries", json={"add": [{"network": "10.0.0.1/8"}]})
    assert r.status_code == 400 and "host bits" in (await r.get_json())["message"]
    r = await t.token.post(base + "/entries", json={"remove": ["192.0.2.1/32"]})
    assert (await r.get_json())["revision"] == 2
    entries = (await (await t.token.get(base + "/entries")).get_json())["entries"]
    assert {e["network"] for e in entries} == {"2001:db8::/32", "198.51.100.0/24"}


async def test_import_is_all_or_nothing_with_line_numbers(hub):
    t = await hub.tenant()
    base = await _list(t)
    bad = "192.0.2.1\n# comment\nnot-an-ip\n\n2001:db8::1\n300.1.1.1\n"
    r = await t.token.post(base + "/import?format=text", data=bad.encode())
    body = await r.get_json()
    assert r.status_code == 400
    assert [d["line"] for d in body["details"]] == [3, 6]
    assert (await (await t.token.get(base)).get_json())["entries"] == 0
    csv_text = "192.0.2.1,,web scanner\n2001:db8::1,2030-01-01T00:00:00Z,\n198.51.100.0/24,1900000000,x\n"
    r = await t.token.post(base + "/import?format=csv", data=csv_text.encode())
    assert (await r.get_json())["added"] == 3
    r = await t.token.post(base + "/import?format=csv&replace=true", data=b"192.0.2.1,,web scanner\n")
    assert (await r.get_json()) == {"revision": 2, "added": 0, "removed": 2, "entries": 1}


async def test_deltas_since_a_revision_and_snapshots_for_laggards(tmp_path):
    from tests.hub.harness import HubHarness

    async with HubHarness(tmp_path, list_delta_max_revisions=3) as hub:
        t = await hub.tenant()
        base = await _list(t)
        for i in range(1, 4):
            await t.token.post(base + "/entries", json={"add": [{"network": f"192.0.2.{i}/32"}]})
        await t.token.post(base + "/entries", json={"remove": ["192.0.2.1/32"]})
        d = await (await t.token.get(base + "/changes?since=2")).get_json()
        assert (d["mode"], d["revision"]) == ("delta", 4)
        assert d["added"] == ["192.0.2.3"] and d["removed"] == ["192.0.2.1"]
        assert (await (await t.token.get(base + "/changes?since=4")).get_json())["mode"] == "current"
        for i in range(4, 8):
            await t.token.post(base + "/entries", json={"remove": ["192.0.2.2/32"] if i == 4 else [],
                                                        "add": [{"network": f"192.0.2.{i}/32"}]})
        d = await (await t.token.get(base + "/changes?since=2")).get_json()
        assert d["mode"] == "snapshot"
        assert sorted(d["entries"]) == [f"192.0.2.{i}" for i in (3, 4, 5, 6, 7)]


async def test_expired_entries_are_swept_as_a_revision(hub):
    t = await hub.tenant()
    base = await _list(t)
    soon = int(time.time()) + 5
    await t.token.post(base + "/entries", json={"add": [{"network": "192.0.2.1/32", "expires_at": soon},
                                                          {"network": "192.0.2.2/32"}]})
    assert await lists.sweep_expired(hub.rt, at=soon + 1) == 1
    d = await (await t.token.get(base + "/changes?since=1")).get_json()
    assert d["removed"] == ["192.0.2.1"] and d["revision"] == 2


async def test_small_changes_to_a_full_list_count_the_whole_list(tmp_path):
    """A change reads only the rows it touches; the size limit still sees every row."""
    from tests.hub.harness import HubHarness

    async with HubHarness(tmp_path, list_max_entries=100) as hub:
        t = await hub.tenant()
        base = await _list(t)
        await t.token.post(base + "/import", data="\n".join(f"10.0.0.{i}" for i in range(100)).encode())
        r = await t.token.post(base + "/entries", json={"add": [{"network": "10.0.1.1/32"}]})
        assert r.status_code == 400 and "would make 101" in (await r.get_json())["message"]
        r = await t.token.post(base + "/entries", json={"add": [{"network": "10.0.0.5/32", "comment": "kept"}],
                                                        "remove": ["10.0.0.6/32"]})
        assert await r.get_json() == {"revision": 2, "added": 1, "removed": 2, "entries": 99}
        r = await t.token.post(base + "/entries", json={"add": [{"network": "10.0.1.1/32"}]})
        assert (await r.get_json())["entries"] == 100


async def test_list_size_limit(tmp_path):
    from tests.hub.harness import HubHarness

    async with HubHarness(tmp_path, list_max_entries=100) as hub:
        t = await hub.tenant()
        base = await _list(t)
        text = "\n".join(f"10.0.{i // 256}.{i % 256}" for i in range(101))
        r = await t.token.post(base + "/import", data=text.encode())
        assert r.status_code == 400 and "at most 100" in (await r.get_json())["message"]


async def test_fifty_thousand_entry_import_then_snapshot_then_delta(hub):
    t = await hub.tenant()
    base = await _list(t)
    text = "\n".join(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(50_000))
    r = await t.token.post(base + "/import", data=text.encode())
    assert r.status_code == 200 and (await r.get_json())["entries"] == 50_000
    # An agent that knows nothing gets a snapshot, then a small delta.
    a = await enroll(t)
    doc = await a.desired()
    assert len(unpacked(doc["lists"][0]["entries"])) == 50_000
    await t.token.post(base + "/entries", json={"remove": ["10.0.0.1/32"]})
    doc = await a.desired()
    assert doc["lists"][0]["mode"] == "delta" and unpacked(doc["lists"][0]["removed"]) == ["10.0.0.1"]
    assert "entries" not in doc["lists"][0]


async def test_concurrent_changes_get_distinct_revisions(hub):
    t = await hub.tenant()
    base = await _list(t)
    results = await asyncio.gather(*[
        t.token.post(base + "/entries", json={"add": [{"network": f"192.0.2.{i}/32"}]}) for i in range(1, 6)])
    revisions = sorted([(await r.get_json())["revision"] for r in results])
    assert revisions == [1, 2, 3, 4, 5]


async def test_rows_stored_with_a_host_length_before_are_made_canonical_and_keep_working(hub):
    import importlib

    from tortoise import Tortoise

    from hub.models import IpEntry, IpList
    t = await hub.tenant()
    base = await _list(t)
    ip_list = await IpList.get(id=base.rsplit("/", 1)[1])
    for network in ("192.0.2.9/32", "2001:db8::1/128", "2001:db8::/32", "198.51.100.0/24"):
        await IpEntry.create(ip_list_id=ip_list.id, network=network, added_rev=0)
    migration = importlib.import_module("hub.migrations.0005_canonical_hosts")
    conn = Tortoise.get_connection("default")
    for sql in migration.STATEMENTS:
        await conn.execute_query(sql)
    entries = (await (await t.token.get(base + "/entries")).get_json())["entries"]
    assert {e["network"] for e in entries} == {"192.0.2.9", "2001:db8::1", "2001:db8::/32", "198.51.100.0/24"}
    r = await t.token.post(base + "/entries", json={"remove": ["192.0.2.9/32", "2001:db8:0::1"]})
    assert (await r.get_json())["removed"] == 2
    r = await t.token.post(base + "/entries", json={"add": [{"network": "198.51.100.0/24"}]})
    assert (await r.get_json())["added"] == 0  # the same entry, however it is written


@pytest.mark.parametrize("changed_by", ["this hub process", "another hub process"])
async def test_a_newcomers_packed_snapshot_follows_each_change(hub, monkeypatch, changed_by):
    t = await hub.tenant()
    base = await _list(t)
    if changed_by == "another hub process":  # this one never sees the changes it serves
        monkeypatch.setattr(lists, "_carry_snapshot", lambda *a: None)
    await t.token.post(base + "/import", data=b"192.0.2.1\n192.0.2.2/32\n10.0.0.0/8\n")
    assert unpacked((await (await enroll(t)).desired())["lists"][0]["entries"]) == \
        ["192.0.2.1", "192.0.2.2", "10.0.0.0/8"]
    await t.token.post(base + "/entries", json={"remove": ["192.0.2.1"], "add": [{"network": "::1/128"}]})
    await t.token.post(base + "/entries", json={"add": [{"network": "10.0.0.0/8", "comment": "new"}]})
    assert unpacked((await (await enroll(t)).desired())["lists"][0]["entries"]) == ["192.0.2.2", "10.0.0.0/8", "::1"]


@pytest.mark.parametrize("changed_by", ["this hub process", "another hub process"])
async def test_a_delta_bigger_than_the_bound_reaches_agents_as_the_snapshot(hub, monkeypatch, changed_by):
    """After an import, agents at the old revision get the list whole (the snapshot the
    hub holds, or reads once), not a delta read row by row that they would rebuild from
    anyway; a small change after it still travels as a delta."""
    monkeypatch.setattr(lists, "AGENT_DELTA_MAX", 3)
    if changed_by == "another hub process":
        monkeypatch.setattr(lists, "_carry_snapshot", lambda *a: asyncio.sleep(0))
    t = await hub.tenant()
    base = await _list(t)
    list_id = base.rsplit("/", 1)[1]
    await t.token.post(base + "/entries", json={"add": [{"network": "203.0.113.1"}]})
    a = await enroll(t)
    r = await a.post("/agent/v1/desired", json={"wait_s": 0, "lists": {}})
    rev = next(x for x in (await r.get_json())["lists"] if x["id"] == list_id)["revision"]
    await t.token.post(base + "/import", data="".join(f"192.0.2.{i}\n" for i in range(1, 10)).encode())
    r = await a.post("/agent/v1/desired", json={"wait_s": 0, "lists": {list_id: rev}})
    item = next(x for x in (await r.get_json())["lists"] if x["id"] == list_id)
    assert item["mode"] == "snapshot"
    assert sorted(unpacked(item["entries"])) == sorted(["203.0.113.1", *(f"192.0.2.{i}" for i in range(1, 10))])
    await t.token.post(base + "/entries", json={"remove": ["192.0.2.5"]})
    r = await a.post("/agent/v1/desired", json={"wait_s": 0, "lists": {list_id: item["revision"]}})
    small = next(x for x in (await r.get_json())["lists"] if x["id"] == list_id)
    assert small["mode"] == "delta" and unpacked(small["removed"]) == ["192.0.2.5"] and unpacked(small["added"]) == []


async def test_a_whole_list_is_packed_off_the_event_loop(hub, monkeypatch):
    """An import's snapshot (a million texts to sort: most of a second) and one read from
    the table are built in worker threads, so the hub keeps answering meanwhile."""
    import threading

    from rules_dsl import addresses

    threads = []
    real = addresses.Packed.__init__

    def spy(self, entries=()):
        if isinstance(entries, list) and len(entries) >= 5:
            threads.append(threading.current_thread() is threading.main_thread())
        real(self, entries)

    monkeypatch.setattr(addresses.Packed, "__init__", spy)
    t = await hub.tenant()
    base = await _list(t)
    await t.token.post(base + "/import?replace=true", data="".join(f"192.0.2.{i}\n" for i in range(1, 10)).encode())
    lists._SNAPSHOTS.clear()  # as in a hub process that did not make the change
    a = await enroll(t)
    r = await a.post("/agent/v1/desired", json={"wait_s": 0, "lists": {}})
    assert len(unpacked((await r.get_json())["lists"][0]["entries"])) == 9
    assert threads == [False, False]  # the import's, then the read's: neither on the loop's thread


async def test_the_live_count_follows_every_change_and_is_filled_in_by_0008(hub):
    """A change checks the list's size from its row (no count of a million rows); the
    count is kept by imports, changes and removals, and migration 0010 fills it in."""
    import importlib

    from tortoise import Tortoise

    from hub.models import IpList

    t = await hub.tenant()
    base = await _list(t)
    list_id = base.rsplit("/", 1)[1]
    await t.token.post(base + "/import", data=b"192.0.2.1\n192.0.2.2\n10.0.0.0/8\n")
    r = await t.token.post(base + "/entries", json={"remove": ["192.0.2.1"], "add": [{"network": "::1"}]})
    assert (await r.get_json())["entries"] == 3
    assert (await IpList.get(id=list_id)).live_count == 3
    await t.token.post(base + "/import?replace=true", data=b"198.51.100.1\n")
    assert (await IpList.get(id=list_id)).live_count == 1
    await IpList.filter(id=list_id).update(live_count=0)
    migration = importlib.import_module("hub.migrations.0010_list_live_count")
    for sql in migration.BACKFILL:
        await Tortoise.get_connection("default").execute_query(sql)
    assert (await IpList.get(id=list_id)).live_count == 1

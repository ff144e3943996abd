"""Deleting a list, a tenant, or erasing a closed tenant leaves none of its list entries
behind: ip_entry has no foreign key to ip_list on PostgreSQL (migration 0015), so nothing
cascades and each of these deletes the entries itself."""
from __future__ import annotations

import datetime as dt

from hub.models import IpEntry, IpList
from hub.services import erasure


async def _filled_list(t, name: str) -> str:
    r = await t.token.post(t.base + "/lists", json={"name": name, "kind": "deny"})
    assert r.status_code == 201, await r.get_data(as_text=True)
    base = f"{t.base}/lists/{(await r.get_json())['id']}"
    r = await t.token.post(base + "/import?format=text", data=b"192.0.2.1\n192.0.2.2\n198.51.100.0/24\n")
    assert r.status_code == 200, await r.get_data(as_text=True)
    r = await t.token.post(base + "/entries", json={"remove": ["192.0.2.2"]})  # a tombstone too
    assert r.status_code == 200, await r.get_data(as_text=True)
    return base


async def _entries_of(tenant_id) -> int:
    ids = await IpList.filter(tenant_id=tenant_id).values_list("id", flat=True)
    return await IpEntry.filter(ip_list_id__in=ids).count()


async def test_the_entry_to_list_key_is_gone_on_postgresql(hub):
    conn = hub.app.extensions["bulwark_db"].db("default")
    if conn.capabilities.dialect != "postgres":
        return  # SQLite keeps it (0015 says why)
    rows = await conn.execute_query_dict(
        "SELECT conname FROM pg_constraint WHERE contype = 'f' "
        "AND conrelid = 'ip_entry'::regclass AND confrelid = 'ip_list'::regclass")
    assert rows == []


async def test_deleting_a_list_deletes_its_entries_and_no_others(hub):
    t = await hub.tenant("a")
    gone, kept = await _filled_list(t, "gone"), await _filled_list(t, "kept")
    before = await IpEntry.all().count()
    assert before == 6
    assert (await t.token.delete(gone)).status_code == 200
    assert await IpEntry.all().count() == 3
    assert (await t.token.get(kept + "/entries")).status_code == 200
    assert await IpEntry.filter(ip_list__tenant_id=t.id).count() == 3  # the relation still filters


async def test_deleting_a_tenant_deletes_its_lists_entries_and_no_others(hub):
    t, other = await hub.tenant("a"), await hub.tenant("b")
    await _filled_list(t, "one")
    await _filled_list(t, "two")
    await _filled_list(other, "theirs")
    assert (await t.owner.delete(t.base)).status_code == 200
    assert await IpEntry.all().count() == 3
    assert await _entries_of(other.id) == 3


async def test_erasing_a_closed_tenant_deletes_its_lists_entries(hub):
    t, other = await hub.tenant("a"), await hub.tenant("b")
    await _filled_list(t, "one")
    await _filled_list(other, "theirs")
    assert (await t.owner.post(t.base + "/close")).status_code == 202
    assert await IpEntry.all().count() == 6  # closing only schedules the erasure
    await erasure.run_due(hub.rt, now=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=31))
    assert not await IpList.filter(tenant_id=t.id).exists()
    assert await IpEntry.all().count() == 3
    assert await _entries_of(other.id) == 3

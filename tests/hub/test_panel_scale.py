"""The panel's pages cost what they show, not what the database holds (issue 13): the
dashboard's queries do not grow with the agents, the audit page walks only what was
appended since its verified mark, and a list's every page is an index range, never an
OFFSET. Runs on SQLite and PostgreSQL (BOTH_BACKENDS)."""
from __future__ import annotations

import contextlib
import re
import time
import uuid

from tortoise import connections

from hub.models import Agent, AuditEntry, IpEntry, IpList
from hub.security import make_credential
from tests.hub.harness import enroll


@contextlib.contextmanager
def counted():
    """Counts the statements sent to the database and the rows they returned."""
    client = type(connections.get("default"))
    seen = {"queries": 0, "rows": 0, "sql": []}
    originals = {name: getattr(client, name) for name in ("execute_query", "execute_query_dict")}

    def wrap(name):
        original = originals[name]

        async def counting(self, *a, **kw):
            out = await original(self, *a, **kw)
            seen["queries"] += 1
            seen["sql"].append(str(a[0]) if a else "")
            rows = out[1] if name == "execute_query" else out
            seen["rows"] += len(rows) if isinstance(rows, list | tuple) else 0
            return out
        return counting

    for name in originals:
        setattr(client, name, wrap(name))
    try:
        yield seen
    finally:
        for name, fn in originals.items():
            setattr(client, name, fn)


async def _agents(tenant_id, n: int) -> None:
    rows = []
    for i in range(n):
        agent_id = uuid.uuid4()
        _, h = make_credential("bwa", agent_id)
        rows.append(Agent(id=agent_id, tenant_id=tenant_id, credential_hash=h, hostname=f"sim-{i}",
                          labels=["edge"]))
    await Agent.bulk_create(rows)


async def test_the_dashboards_queries_do_not_grow_with_its_agents(hub):
    t = await hub.tenant("acme")
    counts = []
    for n in (5, 50):
        await _agents(t.id, n - (counts and 5 or 0))
        await t.owner.client.get(f"/t/{t.id}/")  # warm: the session and templates
        with counted() as seen:
            r = await t.owner.client.get(f"/t/{t.id}/")
            page = await r.get_data(as_text=True)
        assert r.status_code == 200 and page.count("<tr data-agent=") == n
        counts.append(seen["queries"])
        with counted() as seen:
            r = await t.owner.client.get(f"/t/{t.id}/trend")
        assert r.status_code == 200 and len((await r.get_json())["agents"]) == n
        counts.append(seen["queries"])
    assert counts[0] == counts[2] and counts[1] == counts[3], counts


async def test_the_dashboards_totals_are_what_the_api_reports(hub):
    t = await hub.tenant("acme")
    t.token = await t.make_token(["read", "write"])
    now = int(time.time())
    agents = [await enroll(t, hostname=f"edge-{i}") for i in range(2)]
    for i, agent in enumerate(agents):
        points = [{"ts": now - 300 + 30 * k, "rule": rule, "packets": 7 * (i + 1) + k, "bytes": 100 + k,
                   "interval_s": 30} for k in range(8) for rule in ("default", "malformed")]
        r = await agent.post("/agent/v1/metrics", json={"points": points, "top_sources": []})
        assert r.status_code == 200, await r.get_data(as_text=True)
    page = await (await t.owner.client.get(f"/t/{t.id}/")).get_data(as_text=True)
    for agent in agents:
        r = await t.token.get(t.base + "/metrics", query_string={"agent_id": agent.id, "start": now - 600})
        points = (await r.get_json())["points"]
        passed, dropped = sum(p["packets"] for p in points), 0  # no Plan yet: every slot counts as passed
        assert passed > 0
        row = page[page.index(f'data-agent="{agent.id}"'):]
        row = row[:row.index("</tr>")]
        shown = re.findall(r'<td class="num">(\d+) pkts', row)
        assert shown == [str(passed), str(dropped)], (shown, passed, dropped)
    trend = (await (await t.owner.client.get(f"/t/{t.id}/trend")).get_json())["agents"]
    assert set(trend) == {a.id for a in agents} and all(trend[a.id] for a in agents)


async def _chain(hub, n: int) -> None:
    for i in range(n):
        await hub.rt.audit.append(actor="test", action="x.y", target=f"t{i}")


async def _audit_view(t) -> tuple[str, dict]:
    with counted() as seen:
        r = await t.owner.client.get(f"/t/{t.id}/audit")
        page = await r.get_data(as_text=True)
    assert r.status_code == 200
    return page, seen


async def test_the_audit_page_reads_what_was_appended_since_its_mark_not_the_chain(hub):
    t = await hub.tenant("acme")
    reads = []
    for n in (20, 400):
        await _chain(hub, n)
        await _audit_view(t)  # walks what is new and moves the mark
        page, seen = await _audit_view(t)
        assert "chain verified" in page
        reads.append(seen["rows"])
    assert reads[0] == reads[1], reads  # 20 or 420 entries: the same rows read per view
    assert hub.rt.audit.verified_mark().seq == await AuditEntry.all().count()


async def test_an_edit_after_the_mark_shows_on_the_next_view_one_before_it_in_a_full_verify(hub):
    t = await hub.tenant("acme")
    await _chain(hub, 10)
    await _audit_view(t)
    mark = hub.rt.audit.verified_mark()
    await hub.rt.audit.append(actor="test", action="x.y", tenant_id=t.id, target="late")
    await AuditEntry.filter(seq=mark.seq + 1).update(target="mallory")  # after the mark
    page, _ = await _audit_view(t)
    assert "chain broken" in page and f"entry {mark.seq + 1}: edited" in page
    page, _ = await _audit_view(t)
    assert "chain broken" in page  # still: the mark does not pass a problem
    assert hub.rt.audit.verified_mark().seq == mark.seq

    await AuditEntry.filter(seq=mark.seq + 1).update(target="late")  # put back; now edit before the mark
    page, _ = await _audit_view(t)
    assert "chain verified" in page
    await AuditEntry.filter(seq=3).update(action="x.z")
    page, _ = await _audit_view(t)
    assert "chain verified" in page  # a view does not re-read what is before its mark...
    checked, problems = await hub.rt.audit.verify()  # ...the scheduled job and the CLI do
    assert [p.seq for p in problems] == [3]
    assert hub.rt.audit.verified_mark().seq == 2  # and the mark falls back before it
    page, _ = await _audit_view(t)
    assert "chain broken" in page and "entry 3:" in page


async def test_a_forged_or_unreadable_mark_means_verifying_from_the_start(hub):
    t = await hub.tenant("acme")
    await _chain(hub, 5)
    await _audit_view(t)
    path = hub.rt.audit.mark_path
    for junk in ('{"seq": 999, "hash": "00", "at": 1, "mac": "ab"}', "not json", '{"seq": []}', ""):
        path.write_text(junk)
        assert hub.rt.audit.verified_mark() is None
        page, _ = await _audit_view(t)
        assert "chain verified" in page
        assert hub.rt.audit.verified_mark() is not None


async def _big_list(t, n: int) -> IpList:
    r = await t.owner.post(t.base + "/lists", json={"name": "big", "kind": "deny"})
    ip_list = await IpList.get(id=(await r.get_json())["id"])
    await IpEntry.bulk_create([IpEntry(ip_list_id=ip_list.id, network=f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}",
                                       added_rev=1) for i in range(n)], batch_size=5000)
    await IpList.filter(id=ip_list.id).update(live_count=n, revision=1)
    return ip_list


def _networks(page: str) -> list[str]:
    return re.findall(r'<tr><td><code>([^<]+)</code>', page)


def _link(page: str, label: str) -> str | None:
    found = re.search(r'<a href="([^"]+)"[^>]*>' + label + "</a>", page)
    return found.group(1).replace("&amp;", "&") if found else None


async def test_every_list_page_reads_one_page_of_rows_even_the_last_of_100k(hub):
    t = await hub.tenant("acme")
    ip_list = await _big_list(t, 100_000)
    base = f"/t/{t.id}/lists/{ip_list.id}"
    for query in ({}, {"last": "1"}, {"before": "99990"}, {"after": "50000"}, {"q": "10.1."},
                  {"q": "10.1.", "last": "1"}):
        with counted() as seen:
            r = await t.owner.client.get(base, query_string=query)
            page = await r.get_data(as_text=True)
        assert r.status_code == 200 and len(_networks(page)) == 50, query
        assert seen["rows"] < 200 + (10_001 if "q" in query else 0), (query, seen["rows"])
        assert not [sql for sql in seen["sql"] if "OFFSET" in sql.upper()], query
    page = await (await t.owner.client.get(base, query_string={"last": "1"})).get_data(as_text=True)
    assert _networks(page)[-1] == "10.1.134.159" and "100,000 entries" in page  # entry 99,999


async def test_paging_forward_and_back_returns_every_entry_once(hub):
    t = await hub.tenant("acme")
    ip_list = await _big_list(t, 237)
    await IpEntry.filter(ip_list_id=ip_list.id, network="10.0.0.5").update(removed_rev=1)  # not live
    expected = [f"10.0.{i >> 8}.{i & 255}" for i in range(237) if i != 5]
    for q in ("", "10.0."):
        want = expected  # by id; a search is in the database's text order (PostgreSQL: its collation)
        url: str | None = f"/t/{t.id}/lists/{ip_list.id}" + (f"?q={q}" if q else "")
        forward = []
        while url:
            page = await (await t.owner.client.get(url)).get_data(as_text=True)
            forward += _networks(page)
            url = _link(page, "Next page")
        assert forward == want if not q else sorted(forward) == sorted(want) and len(set(forward)) == len(want)
        backward: list[str] = []
        url = _link(page, "Last page") or f"/t/{t.id}/lists/{ip_list.id}?last=1" + (f"&q={q}" if q else "")
        while url:
            page = await (await t.owner.client.get(url)).get_data(as_text=True)
            backward = _networks(page) + backward
            url = _link(page, "Previous page")
        assert backward == (forward if q else want)

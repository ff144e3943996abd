"""A change reaches every waiting agent with the shared work done once per tenant.

The agents here wait on one hub (in-process test client); the assertions count loads
and SQL statements, never time.
"""
from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest
from tortoise.backends.base.client import BaseDBAsyncClient

from hub.services.coalesce import Coalescer
from tests.hub.harness import AgentClient, enroll, unpacked

N = 30


async def _agents(t, n: int) -> list[AgentClient]:
    """n agents of tenant t, made straight in the database (enrolment is tested elsewhere)."""
    from hub.models import Agent
    from hub.security import make_credential

    out, rows = [], []
    for _ in range(n):
        agent_id = uuid.uuid4()
        cred, h = make_credential("bwa", agent_id)
        rows.append(Agent(id=agent_id, tenant_id=t.id, credential_hash=h, hostname="sim"))
        out.append(AgentClient(t.hub.client(), cred, str(agent_id)))
    await Agent.bulk_create(rows)
    return out


@contextlib.contextmanager
def counting_sql(monkeypatch):
    """Counts SQL statements sent through Tortoise while the block runs."""
    counter = {"n": 0}
    for name in ("execute_query", "execute_query_dict", "execute_insert", "execute_many"):
        for cls in {type(c) for c in _clients()} | {BaseDBAsyncClient}:
            original = getattr(cls, name, None)
            if original is None or getattr(original, "_counting", False):
                continue

            def wrap(original=original):
                async def counted(self, *args, **kw):
                    counter["n"] += 1
                    return await original(self, *args, **kw)
                counted._counting = True
                return counted

            monkeypatch.setattr(cls, name, wrap())
    yield counter


def _clients():
    from tortoise.connection import get_connections

    return get_connections().all()


async def _all_waiting(hub, n: int) -> None:
    live = hub.app.extensions["bulwark_agents"]
    while live.pending_pushes < n:
        await asyncio.sleep(0.01)


async def test_a_list_change_is_read_once_for_all_waiting_agents(hub, monkeypatch):
    t = await hub.tenant()
    r = await t.token.post(t.base + "/lists", json={"name": "bad", "kind": "deny"})
    list_path = f"{t.base}/lists/{(await r.get_json())['id']}"
    agents = await _agents(t, N)
    for a in agents:
        await a.desired()
    views = hub.app.extensions["bulwark_desired"].views
    rows = hub.app.extensions["bulwark_agents"].rows
    waiters = [asyncio.create_task(a.desired(wait_s=30)) for a in agents]
    await _all_waiting(hub, N)
    view_loads, row_loads = views.loads, rows.loads
    with counting_sql(monkeypatch) as sql:
        r = await t.token.post(list_path + "/entries", json={"add": [{"network": "203.0.113.7/32"}]})
        change_sql = sql["n"]
        docs = await asyncio.gather(*waiters)
        wake_sql = sql["n"] - change_sql
    assert all(d["lists"][0] == {**docs[0]["lists"][0]} for d in docs)
    assert docs[0]["lists"][0]["mode"] == "delta" and unpacked(docs[0]["lists"][0]["added"]) == ["203.0.113.7"]
    assert len({d["etag"] for d in docs}) == 1 and len({d["agent_id"] for d in docs}) == N
    assert views.loads - view_loads == 1  # the tenant, its lists and the delta: once
    assert rows.loads - row_loads == 0    # a tenant-wide change: the rows read since subscribing hold
    assert change_sql > 0 and wake_sql <= 5  # not proportional to N


async def test_agents_at_different_revisions_get_their_own_update_from_one_view(hub):
    t = await hub.tenant()
    r = await t.token.post(t.base + "/lists", json={"name": "bad", "kind": "deny"})
    list_id = (await r.get_json())["id"]
    current, behind, empty = await _agents(t, 3)
    await t.token.post(f"{t.base}/lists/{list_id}/entries", json={"add": [{"network": "192.0.2.1/32"}]})
    await t.token.post(f"{t.base}/lists/{list_id}/entries", json={"add": [{"network": "192.0.2.2/32"}]})
    await current.desired()
    # Same etag, different list knowledge (say, an agent that lost its list store).
    behind.etag, behind.lists = current.etag, {list_id: 1}
    empty.etag, empty.lists = current.etag, {}
    views = hub.app.extensions["bulwark_desired"].views
    waiters = [asyncio.create_task(a.desired(wait_s=30)) for a in (current, behind, empty)]
    await _all_waiting(hub, 3)
    loads = views.loads
    await t.token.post(f"{t.base}/lists/{list_id}/entries", json={"remove": ["192.0.2.1/32"]})
    docs = await asyncio.gather(*waiters)
    assert views.loads - loads == 1
    assert [d["lists"][0]["mode"] for d in docs] == ["delta", "delta", "snapshot"]
    assert (docs[0]["lists"][0]["since"], unpacked(docs[0]["lists"][0]["removed"]),
            unpacked(docs[0]["lists"][0]["added"])) == (2, ["192.0.2.1"], [])
    assert (docs[1]["lists"][0]["since"], unpacked(docs[1]["lists"][0]["added"])) == (1, ["192.0.2.2"])
    assert unpacked(docs[2]["lists"][0]["entries"]) == ["192.0.2.2"]
    assert len({d["etag"] for d in docs}) == 1


async def test_revoking_one_waiting_agent_refuses_it_at_once_and_leaves_the_others(hub):
    t = await hub.tenant()
    revoked = await enroll(t)
    others = await _agents(t, 5)
    for a in [revoked, *others]:
        await a.desired()
    waiters = [asyncio.create_task(a.post("/agent/v1/desired", json={"etag": a.etag, "wait_s": 30}))
               for a in [revoked, *others]]
    await _all_waiting(hub, 6)
    r = await t.owner.post(f"{t.base}/agents/{revoked.id}/revoke")
    assert r.status_code in (200, 204)
    first = await asyncio.wait_for(waiters[0], 10)
    assert first.status_code == 401
    await asyncio.sleep(0.05)
    assert not any(w.done() for w in waiters[1:])
    assert hub.app.extensions["bulwark_agents"].pending_pushes == 5
    for w in waiters[1:]:
        w.cancel()
    await asyncio.gather(*waiters[1:], return_exceptions=True)


async def test_disable_reaches_only_that_agent_with_deactivate(hub):
    t = await hub.tenant()
    agents = await _agents(t, 4)
    for a in agents:
        await a.desired()
    waiters = [asyncio.create_task(a.desired(wait_s=30)) for a in agents]
    await _all_waiting(hub, 4)
    r = await t.token.post(f"{t.base}/agents/{agents[0].id}/disable")
    assert r.status_code in (200, 204), await r.get_data(as_text=True)
    doc = await asyncio.wait_for(waiters[0], 10)
    assert doc["mode"] == "deactivate"
    await asyncio.sleep(0.05)
    assert not any(w.done() for w in waiters[1:])
    for w in waiters[1:]:
        w.cancel()
    await asyncio.gather(*waiters[1:], return_exceptions=True)


async def test_a_tenant_wide_wake_reuses_the_row_but_an_own_change_is_read_again(hub):
    """The wake of a list change reads no agent row; a change of the agent's own row
    (disable) or of its capture request (asked, then answered) still reaches it."""
    from hub.services import captures

    t = await hub.tenant()
    r = await t.token.post(t.base + "/lists", json={"name": "bad", "kind": "deny"})
    list_path = f"{t.base}/lists/{(await r.get_json())['id']}"
    a = await enroll(t)
    await a.desired()
    rows = hub.app.extensions["bulwark_agents"].rows
    asked = await captures.request(hub.rt, t.id, uuid.UUID(a.id), {"max_frames": 10, "max_seconds": 1, "max_bytes": 4096, "sample_every": 1})
    doc = await a.desired(wait_s=30)  # woken by its own channel: it reads the request
    assert doc["capture"]["id"] == asked["id"]
    waiting = asyncio.create_task(a.desired(wait_s=30))
    await _all_waiting(hub, 1)
    r = await a.post(f"/agent/v1/captures/{asked['id']}", data=b"\xd4\xc3\xb2\xa1" + bytes(20))
    assert r.status_code == 200, await r.get_data(as_text=True)
    assert "capture" not in await asyncio.wait_for(waiting, 10)  # answered: no longer asked
    waiting = asyncio.create_task(a.desired(wait_s=30))
    await _all_waiting(hub, 1)
    loads = rows.loads
    await t.token.post(list_path + "/entries", json={"add": [{"network": "203.0.113.8/32"}]})
    doc = await asyncio.wait_for(waiting, 10)
    assert rows.loads == loads and "capture" not in doc and doc["mode"] == "none"
    waiting = asyncio.create_task(a.desired(wait_s=30))
    await _all_waiting(hub, 1)
    r = await t.token.post(f"{t.base}/agents/{a.id}/disable")
    assert r.status_code in (200, 204)
    assert (await asyncio.wait_for(waiting, 10))["mode"] == "deactivate"


async def test_a_re_poll_reads_its_row_once_unless_a_change_came_between(hub):
    """The re-poll after an answer keeps the row its authentication read (one row load,
    not two); a wake delivered between that read and the wait makes it read again, so
    a disable published then still reaches it."""
    t = await hub.tenant()
    a = await enroll(t)
    live = hub.app.extensions["bulwark_agents"]
    await a.desired()
    loads = live.rows.loads
    waiting = asyncio.create_task(a.desired(wait_s=30))  # with the etag it holds
    await _all_waiting(hub, 1)
    assert live.rows.loads == loads + 1
    waiting.cancel()
    row = await live.authenticate(a.token)
    hub.rt.notifier.deliver("tenant:elsewhere")  # any wake after the read began
    assert not live.still_current(row)
    row = await live.authenticate(a.token)
    assert live.still_current(row) and not live.still_current(row)  # once per authentication


async def test_shared_list_updates_never_cross_tenants(hub):
    """Two tenants' lists with one name, at the same revisions, changed at once, each
    waited on by agents at the same previous revision: every agent gets its own
    tenant's delta, and a tenant's change wakes only its own agents."""
    tenants = [await hub.tenant("a"), await hub.tenant("b")]
    paths, fleets = [], []
    for i, t in enumerate(tenants):
        r = await t.token.post(t.base + "/lists", json={"name": "bad", "kind": "deny"})
        paths.append(f"{t.base}/lists/{(await r.get_json())['id']}")
        await t.token.post(paths[i] + "/entries", json={"add": [{"network": f"198.51.100.{i + 1}/32"}]})
        fleets.append(await _agents(t, 5))
    for a in fleets[0] + fleets[1]:
        await a.desired()
    waiters = [[asyncio.create_task(a.desired(wait_s=30)) for a in fleet] for fleet in fleets]
    await _all_waiting(hub, 10)
    await tenants[0].token.post(paths[0] + "/entries", json={"add": [{"network": "203.0.113.1/32"}]})
    docs_a = await asyncio.gather(*waiters[0])
    await asyncio.sleep(0.05)
    assert not any(w.done() for w in waiters[1])  # tenant b's agents still wait
    await tenants[1].token.post(paths[1] + "/entries", json={"add": [{"network": "203.0.113.2/32"}]})
    docs_b = await asyncio.gather(*waiters[1])
    for docs, path, want in ((docs_a, paths[0], "203.0.113.1"), (docs_b, paths[1], "203.0.113.2")):
        for d in docs:
            (lst,) = d["lists"]
            assert path.endswith(lst["id"]) and lst["mode"] == "delta" and lst["since"] == 1
            assert unpacked(lst["added"]) == [want]
    for fleet, path in zip(fleets, paths):  # a newcomer of each tenant: its own snapshot
        fresh = (await _agents(tenants[fleets.index(fleet)], 1))[0]
        (lst,) = (await fresh.desired())["lists"]
        assert path.endswith(lst["id"]) and len(unpacked(lst["entries"])) == 2


# ---- the coalescer on its own -----------------------------------------------------------


async def test_coalescer_serves_every_ask_made_before_the_load_began_with_one_load():
    calls: list[list[int]] = []
    gate = asyncio.Event()

    async def load(key: str, asks: list[int]) -> list[int]:
        calls.append(list(asks))
        await gate.wait()
        return sorted(asks)

    c: Coalescer[str, int, list[int]] = Coalescer(load)
    first = [asyncio.create_task(c.get("t", i)) for i in range(5)]
    await asyncio.sleep(0)  # the load starts after the asks queued before it
    await asyncio.sleep(0)
    late = [asyncio.create_task(c.get("t", i)) for i in (10, 11)]  # while the load runs
    await asyncio.sleep(0)
    gate.set()
    assert [await f for f in first] == [[0, 1, 2, 3, 4]] * 5
    assert [await f for f in late] == [[10, 11]] * 2  # a later load: fresh for them
    assert calls == [[0, 1, 2, 3, 4], [10, 11]] and c.loads == 2


async def test_coalescer_one_callers_cancel_does_not_cancel_the_others():
    gate = asyncio.Event()

    async def load(key: str, asks: list[int]) -> int:
        await gate.wait()
        return len(asks)

    c: Coalescer[str, int, int] = Coalescer(load)
    a, b = asyncio.create_task(c.get("t", 1)), asyncio.create_task(c.get("t", 2))
    await asyncio.sleep(0)
    a.cancel()
    await asyncio.sleep(0)
    gate.set()
    assert await b == 2
    with pytest.raises(asyncio.CancelledError):
        await a


async def test_coalescer_failure_reaches_every_caller_of_the_batch_only():
    n = {"calls": 0}

    async def load(key: str, asks: list[int]) -> int:
        n["calls"] += 1
        if n["calls"] == 1:
            raise RuntimeError("database gone")
        return len(asks)

    c: Coalescer[str, int, int] = Coalescer(load)
    results = await asyncio.gather(c.get("t", 1), c.get("t", 2), return_exceptions=True)
    assert [type(r) for r in results] == [RuntimeError, RuntimeError]
    assert await c.get("t", 3) == 1


async def test_each_waiting_agent_gets_a_signature_for_itself_signed_once(hub):
    """A deployment wakes every agent with a signature over its own id; the hub's key is
    the one the hub answers at enrolment. A document sent again is not signed again."""
    from bulwark import plan_signature
    from tests.hub.test_deploy import _policy

    t = await hub.tenant()
    agents = [await enroll(t, labels=["web"], hostname=f"w{i}") for i in range(3)]
    signer = hub.app.extensions["bulwark_desired"].signer
    signer.sign.cache_clear()
    for a in agents:
        assert "signature" not in await a.desired()  # mode none: nothing to sign
    p = await _policy(t)
    r = await t.token.post(t.base + "/deployments", json={"policy_id": p["id"], "labels": ["web"]})
    assert r.status_code == 201, await r.get_data(as_text=True)
    docs = [await a.desired() for a in agents]
    for a, doc in zip(agents, docs):
        plan_signature.verify(signer.public_key, doc["signature"], a.id, doc["deployment"]["id"],
                              doc["deployment"]["digest"], doc["mode"])
    assert len({d["signature"] for d in docs}) == 3
    for a in agents:
        a.etag = None
        assert (await a.desired())["signature"] in {d["signature"] for d in docs}
    assert signer.sign.cache_info().misses == 3


async def test_one_long_poll_per_agent_the_newest_takes_the_turn(hub):
    """An agent (or someone with its credential) opening poll after poll holds one waiting
    request at a time: each new one answers the previous at once with 204."""
    t = await hub.tenant()
    a = await enroll(t)
    await a.desired()
    body = {"etag": a.etag, "wait_s": 30}
    first = asyncio.create_task(a.post("/agent/v1/desired", json=body))
    await _all_waiting(hub, 1)
    second = asyncio.create_task(a.post("/agent/v1/desired", json=body))
    assert (await asyncio.wait_for(first, 10)).status_code == 204  # superseded, not held for 30 s
    await _all_waiting(hub, 1)
    assert not second.done()
    r = await t.token.post(t.base + "/lists", json={"name": "bad", "kind": "deny"})
    assert r.status_code == 201
    assert (await asyncio.wait_for(second, 10)).status_code == 200  # the newest gets the change
    assert hub.app.extensions["bulwark_agents"].pending_pushes == 0


async def test_an_agent_asking_for_every_revision_costs_at_most_the_cache_budget(hub, monkeypatch):
    """Distinct revisions each build a delta; what is kept stays within the byte budget."""
    from hub.services import lists

    t = await hub.tenant()
    a = await enroll(t)
    r = await t.token.post(t.base + "/lists", json={"name": "bad", "kind": "deny"})
    list_id = (await r.get_json())["id"]
    for i in range(40):
        await t.token.post(f"{t.base}/lists/{list_id}/entries", json={"add": [{"network": f"10.0.{i}.0/24"}]})
    monkeypatch.setattr(lists._AGENT_DELTAS, "max_bytes", 2_000)
    monkeypatch.setattr(lists._DELTAS, "max_bytes", 20_000)
    lists._AGENT_DELTAS.clear()
    for since in range(1, 40):
        r = await a.post("/agent/v1/desired", json={"wait_s": 0, "lists": {list_id: since}})
        doc = await r.get_json()
        assert next(x for x in doc["lists"] if x["id"] == list_id)["mode"] == "delta"
        assert lists._AGENT_DELTAS.bytes <= 2_000 and lists._DELTAS.bytes <= 20_000


async def test_a_wave_of_newcomers_builds_one_snapshot():
    from hub.services.buildcache import BuildCache

    cache: BuildCache[str] = BuildCache(max_bytes=100, max_items=10, size=len)
    started = asyncio.Event()

    async def build() -> str:
        started.set()
        await asyncio.sleep(0.01)
        return "x" * 10

    got = await asyncio.gather(*(cache.get("k", build) for _ in range(50)))
    assert got == ["x" * 10] * 50 and cache.builds == 1 and cache.bytes == 10
    cache.put("big", "y" * 101)  # larger than the whole budget: handed out, never kept
    assert cache.peek("big") is None
    for i in range(20):
        cache.put(i, "z" * 9)
    assert cache.bytes <= 100 and len(cache._kept) <= 10

    async def broken() -> str:
        raise RuntimeError("db away")

    results = await asyncio.gather(*(cache.get("b", broken) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(x, RuntimeError) for x in results) and cache.peek("b") is None

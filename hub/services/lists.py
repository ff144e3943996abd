"""IP allow/deny lists: entries, imports, revisions, deltas and snapshots.

Invariants:
- Every change operation (add, remove, import, expiry sweep) bumps the list's
  `revision` by exactly one, inside the transaction that makes the change.
- An entry is live from `added_rev` until `removed_rev`; changing an entry's expiry or
  comment removes the old row and adds a new one, so deltas stay exact.
- A delta since N is exact when N >= `horizon_rev`: every tombstone newer than
  `horizon_rev` is kept. Older knowledge gets a full snapshot.
- Imports are all-or-nothing: every line is checked before anything is written.
Bulk writes bypass the ORM (`_insert`: COPY on PostgreSQL, INSERT ... SELECT over a JSON
array on SQLite): a million ORM objects would cost more than the database does. Parsing
an import is hub.services.list_import's.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from hub.errors import Conflict, InvalidInput
from hub.models import IpEntry, IpList
from hub.runtime import Runtime
from hub.services.agents import tenant_channel
from hub.services.background import job
from hub.services.buildcache import BuildCache
from hub.services.list_import import Entry, Wanted, parse_body, parse_network
from hub.services.scope import TenantScope
from rules_dsl import addresses

KINDS = ("allow", "deny")
BATCH = 5000


async def create_list(rt: Runtime, scope: TenantScope, name: str, kind: str) -> IpList:
    scope.require("write")
    if kind not in KINDS:
        raise InvalidInput("kind must be allow or deny")
    if await scope.query(IpList).filter(name=name).exists():
        raise Conflict("a list with this name exists")
    ip_list = await IpList.create(tenant_id=scope.tenant_id, name=name, kind=kind)
    await rt.audit.append(actor=scope.actor, action="list.create", tenant_id=scope.tenant_id,
                          target=str(ip_list.id), address=scope.address, details={"name": name, "kind": kind})
    await rt.notifier.publish(tenant_channel(scope.tenant_id))
    return ip_list


async def _deployed_user(scope: TenantScope, ip_list: IpList) -> str | None:
    """Why `ip_list` may not be renamed or deleted now: a Plan that an agent of the tenant
    is told to run names it (its set would silently lose the entries)."""
    from hub.models import Agent, Deployment

    ids = set(await scope.query(Agent).filter(revoked_at__isnull=True, deployment_id__isnull=False)
              .values_list("deployment_id", flat=True))
    for plan_json in await Deployment.filter(id__in=list(ids)).values_list("plan_json", flat=True) if ids else []:
        try:
            sets = json.loads(plan_json)["xdp"]["sets"]
        except (ValueError, KeyError, TypeError):
            continue
        if any(ip_list.name in s.get("lists", ()) for s in sets):
            return (f'the list "{ip_list.name}" is named by a deployed policy: deploy one without it first, '
                    "or its agents would lose its entries")
    return None


async def rename_list(rt: Runtime, scope: TenantScope, ip_list: IpList, name: str) -> IpList:
    from hub.services import naming

    scope.require("write")
    if name != ip_list.name and (reason := await _deployed_user(scope, ip_list)):
        raise Conflict(reason)
    await naming.rename(rt, scope, ip_list, name, kind="list")
    await rt.notifier.publish(tenant_channel(scope.tenant_id))
    return ip_list


async def delete_list(rt: Runtime, scope: TenantScope, ip_list: IpList) -> None:
    from hub.services import naming

    await naming.delete(rt, scope, ip_list, kind="list", label=ip_list.name,
                        refuse=lambda: _deployed_user(scope, ip_list),
                        children=lambda conn: delete_entries(conn, [ip_list.id]))
    await rt.notifier.publish(tenant_channel(scope.tenant_id))


async def delete_tenant_lists(conn: BaseDBAsyncClient | None, tenant_id: uuid.UUID) -> int:
    """Delete a tenant's lists and their entries in the caller's transaction (`conn`, or
    the one in progress), before its own row goes; returns the entries deleted."""
    ids = await IpList.filter(tenant_id=tenant_id).using_db(conn).values_list("id", flat=True)
    await IpList.filter(id__in=ids).using_db(conn).delete()
    return await delete_entries(conn, ids)


async def delete_entries(conn: BaseDBAsyncClient | None, list_ids: list[uuid.UUID]) -> int:
    """Delete these lists' entries, after their lists' rows in the same transaction:
    ip_entry has no foreign key to ip_list on PostgreSQL (migration 0015: checking it
    per row doubled an import), so nothing cascades. Deleting the list's row first waits
    for an import holding it (`_apply` updates it first), so its entries are then seen and
    go too, and an import that comes after finds no list and rolls back."""
    deleted = 0
    for i in range(0, len(list_ids), BATCH):
        deleted += await IpEntry.filter(ip_list_id__in=list_ids[i:i + BATCH]).using_db(conn).delete()
    return deleted


Live = dict[str, tuple[int, "int | None", str]]  # network -> (row id, expires_at, comment)


def _raw_sql(conn: BaseDBAsyncClient, sql: str, list_id: uuid.UUID) -> tuple[str, list[Any]]:
    """`sql` with its one `{}` the list id's placeholder, and the argument in the driver's form."""
    if conn.capabilities.dialect == "postgres":
        return sql.format("$1"), [list_id]
    return sql.format("?"), [str(list_id)]


async def _live(conn: BaseDBAsyncClient, list_id: uuid.UUID, networks: list[str] | None = None) -> Live:
    """Live rows by network: all of them (rows as the driver gives them, no model objects,
    made a dict in a worker thread), or only those among `networks`."""
    if networks is None:
        _, rows = await conn.execute_query(*_raw_sql(
            conn, "SELECT network, id, expires_at, comment FROM ip_entry WHERE ip_list_id = {} AND removed_rev IS NULL",
            list_id))
        return await asyncio.to_thread(lambda: {row[0]: (row[1], row[2], row[3]) for row in rows})
    query = IpEntry.filter(ip_list_id=list_id, removed_rev__isnull=True).using_db(conn)
    found = []
    for i in range(0, len(networks), BATCH):
        found += await query.filter(network__in=networks[i:i + BATCH]).values_list("id", "network", "expires_at", "comment")
    return {network: (row_id, expires, comment) for row_id, network, expires, comment in found}


# Up to this many networks touched, a change reads only their rows (by the
# (list, network) index) and counts the rest, and works them out on the loop; beyond,
# one scan of the list is cheaper, and the work goes to a worker thread.
TOUCHED_MAX = 20_000


def _diff(live: Live, wanted: Wanted, remove: list[str], replace: bool) -> tuple[list[tuple[str, Entry | None]], set[str]]:
    """(rows to add, networks whose live row goes): an entry whose expiry or comment
    changes is both. Pure."""
    gone = set(remove) & live.keys()
    if replace:
        gone |= live.keys() - wanted.keys()
    if not live:
        return list(wanted.items()), gone
    new = []
    for network, entry in wanted.items():
        old = live.get(network)
        if old is not None:
            if (old[1], old[2]) == ((None, "") if entry is None else (entry.expires_at, entry.comment)):
                continue
            gone.add(network)
        new.append((network, entry))
    return new, gone


async def _apply(rt: Runtime, ip_list: IpList, add: list[Entry] | Wanted, remove: list[str], *,
                 replace: bool = False, audit: dict[str, Any] | None = None) -> dict[str, int]:
    """One revision: add (or update) entries, remove networks, or replace the whole list;
    with `audit` (AuditLog.append's arguments), its entry is written in the same
    transaction, the result merged into its details."""
    wanted: Wanted = add if isinstance(add, dict) else {e.network: e for e in add}
    async with in_transaction() as conn:
        await IpList.filter(id=ip_list.id).using_db(conn).update(revision=F("revision") + 1)
        fresh = await IpList.get(id=ip_list.id).using_db(conn)
        rev = fresh.revision
        touched = None if replace or len(wanted) + len(remove) > TOUCHED_MAX else [*wanted, *remove]
        live = await _live(conn, ip_list.id, touched)
        size = len(live) if touched is None else fresh.live_count
        if touched is None:
            new, gone = await asyncio.to_thread(_diff, live, wanted, remove, replace)
        else:
            new, gone = _diff(live, wanted, remove, replace)
        total = size - len(gone) + len(new)
        if total > rt.config.list_max_entries:
            raise InvalidInput(f"a list holds at most {rt.config.list_max_entries} entries (this would make {total})")
        gone_ids = [live[n][0] for n in gone]
        for i in range(0, len(gone_ids), BATCH):
            await IpEntry.filter(id__in=gone_ids[i:i + BATCH]).using_db(conn).update(removed_rev=rev)
        await _insert(conn, ip_list.id, rev, new)
        await IpList.filter(id=ip_list.id).using_db(conn).update(live_count=total)
        await _compact(conn, fresh, rt.config.list_delta_max_revisions)
        result = {"revision": rev, "added": len(new), "removed": len(gone), "entries": total}
        if audit is not None:
            await rt.audit.append(**{**audit, "details": {**result, **audit.get("details", {})}}, using_db=conn)
    await _carry_snapshot(ip_list.id, rev, None if touched is not None else (live, gone, wanted),
                          [network for network, _ in new] if touched is not None else [], list(gone))
    ip_list.revision = rev
    await rt.notifier.publish(tenant_channel(ip_list.tenant_id))
    if touched is None:
        await _refresh_statistics()
    return result


async def _refresh_statistics() -> None:
    """After a bulk change, PostgreSQL's statistics of ip_entry are refreshed at once
    (autovacuum would take up to a minute). Until then a prepared statement that went
    generic while the table was small keeps its plan: a one-entry change after a
    million-row import walked every live row (150 ms for `_live`, 100 ms for the agents'
    delta), in each hub process. ANALYZE re-plans them everywhere. After the
    notification: the agents are not kept waiting for it."""
    conn = IpEntry._meta.db
    if conn.capabilities.dialect == "postgres":
        await conn.execute_script("ANALYZE ip_entry")


# The columns a bulk insert writes, in the order `_row` gives them (tied to IpEntry's
# fields by tests/hub/test_list_import_fast.py).
COLUMNS = ("ip_list_id", "network", "expires_at", "comment", "added_rev")
INSERT_BATCH = 50_000
# SQLite: a batch is one statement over a JSON array (json_each), not a row of bound
# parameters each: a third of executemany's time, spent in SQLite with the GIL released.
_SQLITE_PLAIN = (f"INSERT INTO ip_entry ({', '.join(COLUMNS)}) "
                 "SELECT ?, value, NULL, '', ? FROM json_each(?)")
_SQLITE_FULL = (f"INSERT INTO ip_entry ({', '.join(COLUMNS)}) "
                "SELECT ?, json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), ? "
                "FROM json_each(?)")


def _row(list_key: Any, network: str, entry: Entry | None, rev: int) -> tuple[Any, str, int | None, str, int]:
    if entry is None:
        return list_key, network, None, "", rev
    return list_key, network, entry.expires_at, entry.comment, rev


async def _insert(conn: BaseDBAsyncClient, list_id: uuid.UUID, rev: int, new: list[tuple[str, Entry | None]]) -> None:
    """Add rows in bulk, a batch at a time, no model objects: COPY on PostgreSQL (asyncpg
    encodes on the loop, so each batch holds it briefly), one INSERT ... SELECT over a
    JSON array per batch on SQLite."""
    if conn.capabilities.dialect == "postgres":
        async with conn.acquire_connection() as raw:  # the transaction's own connection
            for i in range(0, len(new), INSERT_BATCH):
                await raw.copy_records_to_table("ip_entry", columns=COLUMNS, records=[
                    _row(list_id, network, entry, rev) for network, entry in new[i:i + INSERT_BATCH]])
        return
    list_key = str(list_id)
    for i in range(0, len(new), INSERT_BATCH):
        batch = new[i:i + INSERT_BATCH]
        plain = [network for network, entry in batch if entry is None]
        full = [[network, entry.expires_at, entry.comment] for network, entry in batch if entry is not None]
        for sql, values in ((_SQLITE_PLAIN, plain), (_SQLITE_FULL, full)):
            if values:
                await conn.execute_query(sql, [list_key, rev, json.dumps(values)])


async def _compact(conn: BaseDBAsyncClient, ip_list: IpList, keep_revisions: int) -> None:
    cutoff = ip_list.revision - keep_revisions
    if cutoff > ip_list.horizon_rev:
        await IpEntry.filter(ip_list_id=ip_list.id, removed_rev__lte=cutoff).using_db(conn).delete()
        await IpList.filter(id=ip_list.id).using_db(conn).update(horizon_rev=cutoff)


async def change(rt: Runtime, scope: TenantScope, ip_list: IpList, add: list[Entry], remove: list[str]) -> dict[str, int]:
    scope.require("write")
    return await _apply(rt, ip_list, add, [parse_network(r) for r in remove], audit=dict(
        actor=scope.actor, action="list.change", tenant_id=scope.tenant_id, target=str(ip_list.id),
        address=scope.address))


async def import_entries(rt: Runtime, scope: TenantScope, ip_list: IpList, body: AsyncIterator[bytes],
                         fmt: str, replace: bool) -> dict[str, int]:
    """Import a streamed body (see `parse_body`) in one new revision, all or nothing."""
    scope.require("write")
    entries = await parse_body(body, fmt, rt.config.max_import_bytes, rt.config.list_max_entries)
    return await _apply(rt, ip_list, entries, [], replace=replace, audit=dict(
        actor=scope.actor, action="list.import", tenant_id=scope.tenant_id, target=str(ip_list.id),
        address=scope.address, details={"format": fmt, "replace": replace}))


def _entry_json(network: str, expires_at: int | None) -> dict[str, Any] | str:
    return network if expires_at is None else {"network": network, "expires_at": expires_at}


async def snapshot(ip_list: IpList) -> list[dict[str, Any] | str]:
    rows = await IpEntry.filter(ip_list_id=ip_list.id, removed_rev__isnull=True).values_list("network", "expires_at")
    return [_entry_json(n, e) for n, e in rows]


# (list id, revision, since) -> delta. A delta between two revisions never changes, and
# after a change every agent of the tenant asks for the same one at once.
# Deltas and snapshots are built once however many agents ask at the same moment, and
# kept within a byte budget (hub.services.buildcache): an agent asking for every revision
# there is costs at most the budget. Sizes are estimates of what Python holds.
CACHE_MAX_BYTES = 64 * 1024 * 1024
SNAPSHOT_CACHE_MAX_BYTES = 256 * 1024 * 1024
_DELTAS: BuildCache[dict[str, Any]] = BuildCache(
    max_bytes=CACHE_MAX_BYTES, max_items=256,
    size=lambda d: 200 + 120 * (len(d.get("added", ())) + len(d.get("removed", ()))))


async def update_for(ip_list: IpList, since: int | None) -> dict[str, Any]:
    """What an agent at revision `since` needs: nothing, a delta or a snapshot."""
    if since is not None and ip_list.horizon_rev <= since < ip_list.revision:
        return await _DELTAS.get((ip_list.id, ip_list.revision, since), lambda: _update_for(ip_list, since))
    return await _update_for(ip_list, since)


async def _update_for(ip_list: IpList, since: int | None) -> dict[str, Any]:
    base = {"id": str(ip_list.id), "name": ip_list.name, "kind": ip_list.kind, "revision": ip_list.revision}
    if since == ip_list.revision:
        return {**base, "mode": "current"}
    if since is None or since > ip_list.revision or since < ip_list.horizon_rev:
        return {**base, "mode": "snapshot", "entries": await snapshot(ip_list)}
    rows = await IpEntry.filter(ip_list_id=ip_list.id, added_rev__gt=since) \
        .values_list("network", "expires_at", "removed_rev")  # see _agent_delta: by added_rev alone
    added = [(n, e) for n, e, removed_rev in rows if removed_rev is None]
    removed = await IpEntry.filter(ip_list_id=ip_list.id, removed_rev__gt=since, added_rev__lte=since) \
        .values_list("network", flat=True)
    return {**base, "mode": "delta", "since": since,
            "removed": sorted(set(removed)), "added": [_entry_json(n, e) for n, e in added]}


# The agent protocol's form of the same updates: entries in the packed binary form
# (rules_dsl.addresses.Packed), base64 inside the JSON document; expiries stay on the hub,
# which removes expired entries in a new revision. A list's latest packed snapshot is
# kept and carried forward by each change made in this process (or by the delta, for a
# change made by another), so a newcomer's snapshot of a million entries costs a splice,
# not a read of the table. Its base64 is written when an agent first asks for it, not by
# the change (4 MB of base64 is 20 ms in front of every one-entry change's notification).
# Building one from a million texts (an import, a read of the table) runs in a worker
# thread: the event loop keeps answering meanwhile.


@dataclasses.dataclass(slots=True)
class Held:
    """A list's packed contents at one revision, and their wire form once asked for."""

    revision: int
    packed: addresses.Packed
    _wire: str | None = None

    def wire(self) -> str:
        if self._wire is None:
            self._wire = addresses.to_wire(self.packed)
        return self._wire


# list id -> its latest Held; both forms budgeted (about 10 bytes an IPv4 host)
_SNAPSHOTS: BuildCache[Held] = BuildCache(
    max_bytes=SNAPSHOT_CACHE_MAX_BYTES, max_items=64, size=lambda held: 1000 + 10 * len(held.packed))
_AGENT_DELTAS: BuildCache[dict[str, Any]] = BuildCache(
    max_bytes=CACHE_MAX_BYTES, max_items=256, size=lambda d: 200 + len(d.get("added", "")) + len(d.get("removed", "")))
# A delta of more entries than this goes to agents as the snapshot: the agent rebuilds its
# maps whole past its own bound anyway (agent.state.DELTA_MAX), and reading a million
# added rows to send them as a "delta" (after an import) costs seconds the snapshot,
# already held, does not.
AGENT_DELTA_MAX = 20_000


async def agent_update(ip_list: IpList, since: int | None) -> dict[str, Any]:
    """What an agent at revision `since` needs, packed: "current", "delta" (`added` and
    `removed` since `since`) or "snapshot" (`entries`), each list a base64 string. A delta
    bigger than AGENT_DELTA_MAX entries is sent as the snapshot."""
    base = {"id": str(ip_list.id), "name": ip_list.name, "kind": ip_list.kind, "revision": ip_list.revision}
    if since == ip_list.revision:
        return {**base, "mode": "current"}
    if since is not None and ip_list.horizon_rev <= since < ip_list.revision:
        delta = await _AGENT_DELTAS.get((ip_list.id, ip_list.revision, since), lambda: _agent_delta(ip_list, since))
        if delta["mode"] == "delta":
            return {**base, **delta}
    held = await packed_snapshot(ip_list)
    return {**base, "mode": "snapshot", "entries": held.wire()}


async def _agent_delta(ip_list: IpList, since: int) -> dict[str, Any]:
    """{"mode": "delta", "since", "added", "removed"} or {"mode": "snapshot"} (too big);
    reads at most AGENT_DELTA_MAX + 1 rows of each kind."""
    # Filtered on added_rev alone in SQL: with `removed_rev IS NULL` there too, PostgreSQL
    # walks the (list, removed_rev) index through every live row (a million: 150 ms).
    rows = await IpEntry.filter(ip_list_id=ip_list.id, added_rev__gt=since) \
        .limit(AGENT_DELTA_MAX + 1).values_list("network", "removed_rev")
    added = [network for network, removed_rev in rows if removed_rev is None]
    if len(rows) > AGENT_DELTA_MAX:
        return {"mode": "snapshot"}
    removed = [] if len(added) > AGENT_DELTA_MAX else \
        await IpEntry.filter(ip_list_id=ip_list.id, removed_rev__gt=since, added_rev__lte=since) \
        .limit(AGENT_DELTA_MAX + 1).values_list("network", flat=True)
    if len(added) + len(removed) > AGENT_DELTA_MAX:
        return {"mode": "snapshot"}
    return {"mode": "delta", "since": since, "added": addresses.to_wire(addresses.Packed(list(added))),
            "removed": addresses.to_wire(addresses.Packed(list(removed)))}


def _whole(live: dict[str, Any], gone: set[str], wanted: dict[str, Entry]) -> addresses.Packed:
    if not live:
        return addresses.Packed(list(wanted))
    return addresses.Packed(list((live.keys() - gone) | wanted.keys()))


async def _carry_snapshot(list_id: uuid.UUID, rev: int, whole: tuple | None,
                          added: list[str], removed: list[str]) -> None:
    """Keep the packed snapshot at `rev` after a change made here: from the whole list when
    the change read it anyway (imports: `whole` is (live, gone, wanted), built in a worker
    thread), else by the change from the one at `rev - 1`."""
    if whole is not None:
        packed = await asyncio.to_thread(_whole, *whole)
    else:
        held = _SNAPSHOTS.peek(list_id)
        if held is None or held.revision != rev - 1:
            return
        packed = held.packed.changed(addresses.Packed(added), addresses.Packed(removed))
    _remember(list_id, Held(rev, packed))


def _remember(list_id: uuid.UUID, held: Held) -> None:
    current = _SNAPSHOTS.peek(list_id)
    if current is None or current.revision <= held.revision:
        _SNAPSHOTS.put(list_id, held)


# Single flight only (keeps nothing): a newcomer wave asks for the same snapshot at once.
_SNAPSHOT_BUILDS: BuildCache[Held] = BuildCache(max_bytes=0, max_items=0, size=lambda held: 0)


async def packed_snapshot(ip_list: IpList) -> Held:
    """The contents of a list at its current revision (and their base64, `.wire()`)."""
    held = _SNAPSHOTS.peek(ip_list.id)
    if held is not None and held.revision == ip_list.revision:
        return held
    return await _SNAPSHOT_BUILDS.get((ip_list.id, ip_list.revision), lambda: _build_snapshot(ip_list, held))


async def _build_snapshot(ip_list: IpList, held: Held | None) -> Held:
    """From the held snapshot and a small delta (the one agents get), else from one read
    of the table, packed in a worker thread: a million-row delta read through the ORM and
    packed on the loop held a hub process that had not made the import for many seconds."""
    delta = None
    if held is not None and ip_list.horizon_rev <= held.revision < ip_list.revision:
        delta = await _AGENT_DELTAS.get((ip_list.id, ip_list.revision, held.revision),
                                        lambda: _agent_delta(ip_list, held.revision))
    if held is not None and delta is not None and delta["mode"] == "delta":
        packed = held.packed.changed(addresses.from_wire(delta["added"]), addresses.from_wire(delta["removed"]))
    else:
        conn = IpEntry._meta.db
        _, rows = await conn.execute_query(*_raw_sql(  # rows as the driver gives them: no model objects
            conn, "SELECT network FROM ip_entry WHERE ip_list_id = {} AND removed_rev IS NULL", ip_list.id))
        packed = await asyncio.to_thread(lambda: addresses.Packed([row[0] for row in rows]))
        del rows
        moved = await IpList.filter(id=ip_list.id).values_list("revision", flat=True)
        if moved != [ip_list.revision]:  # changed while read: right for now, not to keep
            return Held(ip_list.revision, packed)
    held = Held(ip_list.revision, packed)
    _remember(ip_list.id, held)
    return held


async def sweep_expired(rt: Runtime, at: int | None = None) -> int:
    """Remove expired entries (one new revision per list touched); returns lists touched."""
    at = int(time.time()) if at is None else at
    list_ids = set(await IpEntry.filter(removed_rev__isnull=True, expires_at__lte=at)
                   .values_list("ip_list_id", flat=True))
    for list_id in list_ids:
        ip_list = await IpList.get(id=list_id)
        expired = await IpEntry.filter(ip_list_id=list_id, removed_rev__isnull=True, expires_at__lte=at) \
            .values_list("network", flat=True)
        await _apply(rt, ip_list, [], list(expired), audit=dict(
            actor="hub", action="list.expire", tenant_id=ip_list.tenant_id, target=str(ip_list.id)))
    return len(list_ids)


@job("list-expiry", every_s=30)
async def _sweep_job(rt: Runtime) -> None:
    await sweep_expired(rt)

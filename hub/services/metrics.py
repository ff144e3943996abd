"""Metrics: ingest per-rule counters, top dropped sources and drop aggregates; rollups; queries.

Raw points live `metrics_raw_retention_s`; a background job folds them into
`metrics_rollup_s` buckets (recomputing the last few buckets, so it is idempotent and
late points still count) kept `metrics_rollup_retention_s`.

Ingest is a group commit (`MetricsWriter`): the batches that arrive while one write is
running are written together, in one transaction, by the next. A request is answered
only once its rows are committed, so an accepted batch is stored and queryable; what
grouping saves is the per-transaction cost (a commit, a round trip to the database
thread or server), which is most of the cost of a small batch.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import sqlite3
import time
import uuid
from typing import Any

from pypika_tortoise import functions as pypika_functions
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import Aggregate
from tortoise.functions import Sum
from tortoise.transactions import in_transaction

from hub.api_schemas.common import MAX_INT
from hub.errors import InvalidInput
from hub.models import MetricPoint, MetricRollup, TopSource, TrafficAggregate
from hub.runtime import Runtime
from hub.services.background import job
from hub.services.coalesce import Coalescer
from hub.services.quota import Quota
from rules_dsl import traffic as traffic_contract

RECOMPUTE_BUCKETS = 10
log = logging.getLogger("bulwark.hub")


def saturated(value: float | None) -> int:
    """A sum as the API and the bigint columns can hold it: 0..MAX_INT."""
    return max(0, min(MAX_INT, int(value or 0)))


class _TotalFunction(pypika_functions.AggregateFunction):
    def __init__(self, term: Any, alias: str | None = None) -> None:
        super().__init__("TOTAL", term, alias=alias)


class Total(Aggregate):
    """SQLite's TOTAL(): a sum that cannot overflow."""

    database_func = _TotalFunction


def metrics_channel(tenant_id: uuid.UUID) -> str:
    return f"metrics:{tenant_id}"


def _ph(conn: BaseDBAsyncClient, n: int) -> str:
    if conn.capabilities.dialect == "postgres":
        return ", ".join(f"${i}" for i in range(1, n + 1))
    return ", ".join("?" * n)


def _uuid(conn: BaseDBAsyncClient, value: uuid.UUID) -> Any:
    return value if conn.capabilities.dialect == "postgres" else str(value)


@dataclasses.dataclass(frozen=True, slots=True)
class Batch:
    tenant_id: uuid.UUID
    agent_id: uuid.UUID
    points: list[dict[str, Any]]
    top: list[dict[str, Any]]
    traffic: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # rules_dsl.traffic rows


def check_batch(rt: Runtime, batch: Batch, now: int) -> int:
    """The number of rows in the batch. Raises InvalidInput (too many, or a `ts` outside
    the raw retention window or more than 5 minutes ahead)."""
    n = len(batch.points) + len(batch.top) + len(batch.traffic)
    if n > rt.config.max_metrics_points:
        raise InvalidInput(f"a batch holds at most {rt.config.max_metrics_points} points")
    oldest = now - rt.config.metrics_raw_retention_s
    for p in (*batch.points, *batch.top, *batch.traffic):
        if not oldest <= p["ts"] <= now + 300:
            raise InvalidInput(f"point at {p['ts']} is outside the accepted time window")
    return n


class MetricsWriter:
    """Writes agents' batches by group commit (see the module docstring); one per process.

    Each batch is checked alone before it joins a group (`check_batch`, the agent's
    quota), and if a group's transaction still fails, its batches are written again one
    by one: a bad batch fails only its own request, never another tenant's."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self.quota = Quota(rt.config.metrics_agent_rows_per_s, rt.config.metrics_agent_burst_rows)
        self.writes: Coalescer[None, Batch, dict[int, Exception]] = Coalescer(self._write)

    async def ingest(self, batch: Batch) -> int:
        """Store the batch; returns its row count once committed. Raises InvalidInput,
        TooManyRequests (the agent's quota)."""
        n = check_batch(self._rt, batch, int(time.time()))
        if n:
            self.quota.take(batch.agent_id, n)
            failed = await self.writes.get(None, batch)
            if id(batch) in failed:
                raise failed[id(batch)]
        return n

    async def _write(self, _: None, batches: list[Batch]) -> dict[int, Exception]:
        failed: dict[int, Exception] = {}
        try:
            await self._insert(batches)
        except Exception as exc:
            if len(batches) == 1:
                failed[id(batches[0])] = exc
            else:
                log.warning("a group of %d metrics batches failed (%s); writing them one by one", len(batches), exc)
                for b in batches:
                    try:
                        await self._insert([b])
                    except Exception as one:
                        failed[id(b)] = one
        stored = {metrics_channel(b.tenant_id) for b in batches if id(b) not in failed}
        if stored:
            await self._rt.notifier.publish(*stored)
        return failed

    @staticmethod
    async def _insert(batches: list[Batch]) -> None:
        async with in_transaction() as conn:
            points, sources, aggregates = [], [], []
            for b in batches:
                t, a = _uuid(conn, b.tenant_id), _uuid(conn, b.agent_id)
                points += [(t, a, p["rule"], p["ts"], p["packets"], p["bytes"], p["interval_s"]) for p in b.points]
                sources += [(t, a, s["ts"], s["source"], s["packets"]) for s in b.top]
                aggregates += [(t, a, g["ts"], g["kind"], g["proto"], g["value"], g["packets"]) for g in b.traffic]
            await insert_rows(conn, "metric_point", POINT_COLUMNS, points)
            await insert_rows(conn, "top_source", SOURCE_COLUMNS, sources)
            await insert_rows(conn, "traffic_aggregate", AGGREGATE_COLUMNS, aggregates)


POINT_COLUMNS = ("tenant_id", "agent_id", "rule", "ts", "packets", "bytes", "interval_s")
SOURCE_COLUMNS = ("tenant_id", "agent_id", "ts", "source", "packets")
AGGREGATE_COLUMNS = ("tenant_id", "agent_id", "ts", "kind", "proto", "value", "packets")
# Bound parameters per SQLite statement: 32,766 since SQLite 3.32, 999 before.
SQLITE_MAX_VARIABLES = 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999


async def insert_rows(conn: BaseDBAsyncClient, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """INSERT `rows` (tuples in `columns` order) into `table` inside `conn`'s transaction.

    On SQLite as few multi-row INSERTs as the parameter limit allows, not `executemany`:
    the sqlite3 module releases the GIL around each statement step, i.e. once per row,
    and under load the database thread then waits for the busy event loop to hand the GIL
    back, row after row (a group of 240 batches, ~5,000 rows, took 55-220 ms per table in
    bench/hub_metrics.py, ~5 ms unloaded). One statement is one step. PostgreSQL keeps
    asyncpg's `executemany`, which already sends every row in one round trip."""
    if not rows:
        return
    names = ", ".join(columns)
    if conn.capabilities.dialect == "postgres":
        await conn.execute_many(f"INSERT INTO {table} ({names}) VALUES ({_ph(conn, len(columns))})", rows)
        return
    per = SQLITE_MAX_VARIABLES // len(columns)
    one = f"({', '.join('?' * len(columns))})"
    for i in range(0, len(rows), per):
        chunk = rows[i:i + per]
        await conn.execute_query(f"INSERT INTO {table} ({names}) VALUES {', '.join([one] * len(chunk))}",
                                 [v for row in chunk for v in row])


# The rollup is summed by the database, in one statement: read into Python, the last
# RECOMPUTE_BUCKETS of raw points (10 minutes, 6M rows at 1,000 agents) held the event
# loop for tens of seconds, every request of the process waiting behind it, its SELECT
# stuck in ClientWrite and the other transactions idle. Sums are clamped as `saturated`
# does (PostgreSQL's SUM of bigint is numeric; SQLite's TOTAL cannot overflow).
_ROLLUP_PG = """INSERT INTO metric_rollup (tenant_id, agent_id, rule, bucket, resolution_s, packets, bytes)
SELECT tenant_id, agent_id, rule, ts - ts % $1, $1, LEAST($4, GREATEST(0, SUM(packets))),
       LEAST($4, GREATEST(0, SUM(bytes)))
FROM metric_point WHERE ts >= $2 AND ts < $3 GROUP BY 1, 2, 3, 4"""
_ROLLUP_SQLITE = """INSERT INTO metric_rollup (tenant_id, agent_id, rule, bucket, resolution_s, packets, bytes)
SELECT tenant_id, agent_id, rule, ts - ts % ?, ?, MIN(?, MAX(0, CAST(TOTAL(packets) AS INTEGER))),
       MIN(?, MAX(0, CAST(TOTAL(bytes) AS INTEGER)))
FROM metric_point WHERE ts >= ? AND ts < ? GROUP BY 1, 2, 3, 4"""


async def rollup(rt: Runtime, now: int | None = None) -> None:
    now = int(time.time()) if now is None else now
    res = rt.config.metrics_rollup_s
    end = now - now % res
    start = end - RECOMPUTE_BUCKETS * res
    async with in_transaction() as conn:
        await MetricRollup.filter(resolution_s=res, bucket__gte=start, bucket__lt=end).using_db(conn).delete()
        pg = conn.capabilities.dialect == "postgres"
        await conn.execute_query(_ROLLUP_PG if pg else _ROLLUP_SQLITE,
                                 [res, start, end, MAX_INT] if pg else [res, res, MAX_INT, MAX_INT, start, end])
    from hub.services import retention

    await retention.enforce(rt, now=dt.datetime.fromtimestamp(now, dt.timezone.utc),
                            only=("sample_addresses", "sample_aggregates", "raw_metrics", "rollups"))


@job("metrics-rollup", every_s=60)
async def _rollup_job(rt: Runtime) -> None:
    await rollup(rt)


async def query(tenant_id: uuid.UUID, *, agent_id: uuid.UUID | None, rule: str | None,
                start: int, end: int, resolution: str, rollup_s: int) -> list[dict[str, Any]]:
    if resolution == "raw":
        qs = MetricPoint.filter(tenant_id=tenant_id, ts__gte=start, ts__lt=end)
        time_field = "ts"
    else:
        qs = MetricRollup.filter(tenant_id=tenant_id, resolution_s=rollup_s, bucket__gte=start, bucket__lt=end)
        time_field = "bucket"
    if agent_id is not None:
        qs = qs.filter(agent_id=agent_id)
    if rule is not None:
        qs = qs.filter(rule=rule)
    rows = await qs.order_by(time_field).limit(50000).values("agent_id", "rule", time_field, "packets", "bytes")
    return [{"agent_id": str(r["agent_id"]), "rule": r["rule"], "ts": r[time_field],
             "packets": r["packets"], "bytes": r["bytes"]} for r in rows]


async def bucketed(tenant_id: uuid.UUID, start: int, end: int, bucket_s: int) -> list[dict[str, Any]]:
    """Raw points summed per (agent, rule, `bucket_s` bucket) in SQL: what the dashboard's
    trend draws for every agent at once, in rows ~ agents x rules x buckets however often
    the agents report (a row per point would be thousands per agent, read through the ORM)."""
    return await _grouped(tenant_id, start, end, bucket_s)


async def per_rule(tenant_id: uuid.UUID, start: int, end: int) -> list[dict[str, Any]]:
    """Raw points summed per (agent, rule) over [start, end) in SQL (`ts` is `start`): the
    dashboard's totals, in rows ~ agents x rules whatever the window holds."""
    return await _grouped(tenant_id, start, end, None)


async def _grouped(tenant_id: uuid.UUID, start: int, end: int, bucket_s: int | None) -> list[dict[str, Any]]:
    conn = MetricPoint._meta.db
    pg = conn.capabilities.dialect != "sqlite"
    total = "SUM" if pg else "TOTAL"  # SQLite's SUM raises on 64-bit overflow (see top_sources)
    values: list[Any] = [tenant_id if pg else str(tenant_id), start, end]
    bucket, group = "", "agent_id, rule"
    if bucket_s is not None:  # an int, written into the SQL: placeholders differ in order per dialect
        bucket, group = f", (ts / {int(bucket_s)}) * {int(bucket_s)} AS b", "agent_id, rule, b"
    where = "tenant_id = $1 AND ts >= $2 AND ts < $3" if pg else "tenant_id = ? AND ts >= ? AND ts < ?"
    sql = (f"SELECT agent_id, rule{bucket}, {total}(packets) AS p, {total}(bytes) AS n "
           f"FROM {MetricPoint._meta.db_table} WHERE {where} GROUP BY {group}")
    rows = await conn.execute_query_dict(sql, values)
    return [{"agent_id": str(r["agent_id"]), "rule": r["rule"], "ts": int(r["b"]) if bucket_s else start,
             "packets": saturated(r["p"]), "bytes": saturated(r["n"])} for r in rows]


async def top_sources(tenant_id: uuid.UUID, start: int, end: int, limit: int = 20,
                      agent_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
    # SQLite's SUM raises on 64-bit overflow; TOTAL adds in floating point and never does.
    # PostgreSQL's SUM of bigint is numeric (exact, unbounded). Either way: saturated.
    total = Total("packets") if TopSource._meta.db.capabilities.dialect == "sqlite" else Sum("packets")
    where = {"agent_id": agent_id} if agent_id is not None else {}
    rows = await TopSource.filter(tenant_id=tenant_id, ts__gte=start, ts__lt=end, **where) \
        .group_by("source").annotate(total=total).order_by("-total").limit(limit) \
        .values("source", "total")
    return [{"source": r["source"], "packets": saturated(r["total"])} for r in rows]


async def traffic(tenant_id: uuid.UUID, start: int, end: int,
                  agent_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
    """The drop aggregates of the window summed per (kind, proto, value), busiest first
    within each kind; at most rules_dsl.traffic.MAX_ROWS rows per kind."""
    total = Total("packets") if TrafficAggregate._meta.db.capabilities.dialect == "sqlite" else Sum("packets")
    where = {"agent_id": agent_id} if agent_id is not None else {}
    out = []
    for kind in traffic_contract.KINDS:
        rows = await TrafficAggregate.filter(tenant_id=tenant_id, ts__gte=start, ts__lt=end, kind=kind, **where) \
            .group_by("proto", "value").annotate(total=total).order_by("-total").limit(traffic_contract.MAX_ROWS) \
            .values("proto", "value", "total")
        out += [{"kind": kind, "proto": r["proto"], "value": r["value"], "packets": saturated(r["total"])}
                for r in rows]
    return out


async def latest_point_id(tenant_id: uuid.UUID) -> int:
    row = await MetricPoint.filter(tenant_id=tenant_id).order_by("-id").first().values("id")
    return row["id"] if row else 0


async def live_rates(tenant_id: uuid.UUID, after_id: int) -> tuple[int, list[dict[str, Any]]]:
    """Per-rule rates of points stored after row `after_id` (for the SSE stream)."""
    rows = await MetricPoint.filter(tenant_id=tenant_id, id__gt=after_id).order_by("id").limit(10000) \
        .values("id", "agent_id", "rule", "ts", "packets", "bytes", "interval_s")
    last = rows[-1]["id"] if rows else after_id
    return last, [{"agent_id": str(r["agent_id"]), "rule": r["rule"], "ts": r["ts"],
                   "pps": r["packets"] / r["interval_s"], "bps": 8 * r["bytes"] / r["interval_s"]}
                  for r in rows]

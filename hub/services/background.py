"""Periodic housekeeping run by every hub process: list-entry expiry, metrics rollups.

Each step is idempotent, but two processes running the same step at the same moment
would collide (a rollup's unique rows, an expiry sweep's revision): on PostgreSQL a run
holds a transaction-level advisory lock named after its job, and a process that finds
it taken skips that period. SQLite serves one process, which runs its jobs one by one."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from tortoise.transactions import in_transaction

if TYPE_CHECKING:  # hub.runtime imports the audit log, which registers a job here
    from hub.runtime import Runtime

log = logging.getLogger("bulwark.hub.background")

JOB_MODULES: list[str] = ["hub.services.lists", "hub.services.metrics", "hub.services.audit", "hub.services.alerts",
                          "hub.services.outbox", "hub.services.billing", "hub.services.erasure",
                          "hub.services.retention"]
# every_s: seconds, or the name of the HubConfig field that holds them
JOBS: list[tuple[str, float | str, Callable[[Runtime], Awaitable[None]]]] = []


def job(name: str, every_s: float | str) -> Callable[[Callable[[Runtime], Awaitable[None]]], Callable[[Runtime], Awaitable[None]]]:
    def register(fn: Callable[[Runtime], Awaitable[None]]) -> Callable[[Runtime], Awaitable[None]]:
        JOBS.append((name, every_s, fn))
        return fn

    return register


async def run_once(rt: Runtime, name: str, fn: Callable[[Runtime], Awaitable[None]]) -> bool:
    """Run the job unless another process is running it now; True when it ran."""
    if rt.config.is_sqlite:
        await fn(rt)
        return True
    async with in_transaction() as conn:  # the job's queries run in this transaction
        rows = await conn.execute_query_dict(
            "SELECT pg_try_advisory_xact_lock(hashtext($1)) AS got", [f"bulwark:{name}"])
        if not rows[0]["got"]:
            return False
        await fn(rt)
    return True


async def _loop(rt: Runtime, name: str, every_s: float, fn: Callable[[Runtime], Awaitable[None]]) -> None:
    while True:
        await asyncio.sleep(every_s)
        try:
            await run_once(rt, name, fn)
        except Exception:  # a failed run is retried next period; never kill the loop
            log.exception("background job %s failed", name)


def start(rt: Runtime) -> list[asyncio.Task[None]]:
    import importlib

    for module in JOB_MODULES:  # jobs register themselves on import
        importlib.import_module(module)
    return [asyncio.create_task(_loop(rt, name, getattr(rt.config, every) if isinstance(every, str) else every, fn),
                                name=f"bulwark:{name}") for name, every, fn in JOBS]

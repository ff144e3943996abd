"""Periodic housekeeping run by every hub process (each step is idempotent, so several
processes running it at once only repeat work): list-entry expiry, metrics rollups,
the connected-agents gauge."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from hub.runtime import Runtime

log = logging.getLogger("bulwark.hub.background")

JOB_MODULES: list[str] = ["hub.services.lists", "hub.services.metrics"]
JOBS: list[tuple[str, float, Callable[[Runtime], Awaitable[None]]]] = []


def job(name: str, every_s: float) -> Callable[[Callable[[Runtime], Awaitable[None]]], Callable[[Runtime], Awaitable[None]]]:
    def register(fn: Callable[[Runtime], Awaitable[None]]) -> Callable[[Runtime], Awaitable[None]]:
        JOBS.append((name, every_s, fn))
        return fn

    return register


async def _loop(rt: Runtime, name: str, every_s: float, fn: Callable[[Runtime], Awaitable[None]]) -> None:
    while True:
        await asyncio.sleep(every_s)
        try:
            await fn(rt)
        except Exception:  # a failed run is retried next period; never kill the loop
            log.exception("background job %s failed", name)


def start(rt: Runtime) -> list[asyncio.Task[None]]:
    import importlib

    for module in JOB_MODULES:  # jobs register themselves on import
        importlib.import_module(module)
    return [asyncio.create_task(_loop(rt, name, every, fn), name=f"bulwark:{name}") for name, every, fn in JOBS]

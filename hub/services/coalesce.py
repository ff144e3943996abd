"""Share one read among every request that needs it at the same moment.

When a change is published, every waiting agent of the tenant wakes in the same event
loop turn and needs the same rows. A `Coalescer` lets them ask together: the first ask
for a key opens a batch, later asks join it while it has not started, and one `load`
serves them all.

Invariants:
- A batch starts reading only after every ask it serves was made, so an answer is at
  least as fresh as anything committed before the ask (a waiter woken by a publish,
  which follows its commit, never gets a read older than the change).
- Loads of one key run one at a time; asks arriving during a load open the next batch,
  so under load the batches grow instead of the reads multiplying.
- One caller's cancellation never cancels the load the others wait on.
"""
from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
A = TypeVar("A")
R = TypeVar("R")


@dataclasses.dataclass(slots=True)
class _Batch(Generic[A, R]):
    future: asyncio.Future[R]
    asks: list[A]


class Coalescer(Generic[K, A, R]):
    """`await get(key, ask)` → the result of `load(key, asks)` for the batch it joined."""

    def __init__(self, load: Callable[[K, list[A]], Awaitable[R]]) -> None:
        self._load = load
        self._pending: dict[K, _Batch[A, R]] = {}
        self._running: set[K] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.loads = 0  # how many loads ran (tests count them)

    async def get(self, key: K, ask: A) -> R:
        batch = self._pending.get(key)
        if batch is None:
            batch = self._pending[key] = _Batch(asyncio.get_running_loop().create_future(), [])
            # Nobody awaits a batch whose callers were all cancelled: mark it read.
            batch.future.add_done_callback(lambda f: f.cancelled() or f.exception())
            if key not in self._running:
                self._start(key)
        batch.asks.append(ask)
        return await asyncio.shield(batch.future)

    def _start(self, key: K) -> None:
        self._running.add(key)
        # A task's first step runs after the callbacks already queued, i.e. after the
        # other requests woken by the same publish have made their asks.
        task = asyncio.get_running_loop().create_task(self._run(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, key: K) -> None:
        batch = self._pending.pop(key)
        try:
            self.loads += 1
            result = await self._load(key, batch.asks)
        except asyncio.CancelledError:
            batch.future.cancel()
            raise
        except Exception as exc:  # every waiter of the batch gets the failure
            batch.future.set_exception(exc)
        else:
            batch.future.set_result(result)
        finally:
            self._running.discard(key)
            if key in self._pending:
                self._start(key)

"""Results that are costly to build and asked for by many at once (list deltas and
snapshots for agents): built once per key however many ask at the same moment, kept
while they fit in a byte budget.

Invariants:
- One build per key at a time (single flight): concurrent askers await the same build,
  and a failed build fails them all and is not kept.
- What is kept never exceeds `max_bytes` (by the caller's size estimate) nor `max_items`;
  the least recently used goes first, and a result larger than the whole budget is
  handed out but not kept. So an agent asking for every revision there is costs the hub
  at most the budget, never a build kept per question.
"""
from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class BuildCache(Generic[V]):
    def __init__(self, *, max_bytes: int, max_items: int, size: Callable[[V], int]) -> None:
        self.max_bytes, self.max_items, self._size = max_bytes, max_items, size
        self._kept: collections.OrderedDict[Hashable, tuple[V, int]] = collections.OrderedDict()
        self._building: dict[Hashable, asyncio.Future[V]] = {}
        self.bytes = 0
        self.builds = 0

    def peek(self, key: Hashable) -> V | None:
        held = self._kept.get(key)
        if held is None:
            return None
        self._kept.move_to_end(key)
        return held[0]

    async def get(self, key: Hashable, build: Callable[[], Awaitable[V]]) -> V:
        held = self.peek(key)
        if held is not None:
            return held
        running = self._building.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._building[key] = future
        try:
            self.builds += 1
            value = await build()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: a build nobody else awaited must not warn
            raise
        finally:
            self._building.pop(key, None)
        future.set_result(value)
        self.put(key, value)
        return value

    def put(self, key: Hashable, value: V) -> None:
        self.discard(key)
        size = self._size(value)
        if size > self.max_bytes:
            return
        self._kept[key] = (value, size)
        self.bytes += size
        while self.bytes > self.max_bytes or len(self._kept) > self.max_items:
            _, (_, old) = self._kept.popitem(last=False)
            self.bytes -= old

    def discard(self, key: Hashable) -> None:
        held = self._kept.pop(key, None)
        if held is not None:
            self.bytes -= held[1]

    def clear(self) -> None:
        self._kept.clear()
        self.bytes = 0

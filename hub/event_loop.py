"""The serving processes' event loop: uvloop's (libuv), a declared dependency.

Why: at 10,000 streaming agents a list change is 10,000 wake-ups and socket writes, and
in a profile of a hub process a quarter of its CPU was asyncio's own loop machinery
(handles, call_soon, the selector). uvloop runs the same asyncio programs (Hypercorn,
asyncpg, aiosqlite) with that part in C.
"""
from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on uvloop's loop."""
    import uvloop

    return uvloop.run(main)

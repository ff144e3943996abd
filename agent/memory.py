"""Keeping the idle daemon small after it once handled a million-entry list.

glibc gives each thread that allocates its own malloc arena. The daemon's kernel work
runs in trio's worker threads, so a big apply leaves its peak (tens of MB: the list's
strings, its set of keys, batch buffers) in an arena that `malloc_trim` does not shrink
back, and the idle RSS keeps it. The work is serialised anyway (`Dataplane.lock`), so
one arena costs nothing in contention: `single_arena()` at daemon start, then
`release_memory()` after each big apply or save. Elsewhere than glibc both are no-ops.
"""
from __future__ import annotations

import ctypes

M_ARENA_MAX = -8  # glibc's mallopt parameter


def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def single_arena() -> bool:
    """Make every thread allocate from the main arena. Call before worker threads start.
    Returns whether it took effect."""
    libc = _libc()
    try:
        return bool(libc is not None and libc.mallopt(M_ARENA_MAX, 1))
    except AttributeError:
        return False


def release_memory() -> None:
    """Give freed heap back to the system (glibc's malloc_trim)."""
    libc = _libc()
    try:
        if libc is not None:
            libc.malloc_trim(0)
    except AttributeError:
        pass

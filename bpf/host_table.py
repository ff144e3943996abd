"""The guard's exact hosts: a static hash table per family and generation, laid out
here in an mmapped BPF array and filled in one pass at C speed (layout and hash in
guard.h), plus a small kernel hash of the one-entry changes made since.

Why not a kernel hash map for the million hosts: each kernel insert costs about 0.3 µs
here, so 1,000,000 of them take 0.3-0.5 s whatever the batching, threads or
preallocation (measured for issue 11); laying the table out in the array costs a
memcpy-like pass over the packed list (tens of milliseconds), and the program's lookup
stays one hash and a probe or two in one page.

Deltas never write the table (a packet could read a half-written slot): the host's
whole new mask goes into the delta hash in one map update, after its bit is set in
the head's filter, and the program takes a delta entry over the table.
"""
from __future__ import annotations

import ctypes
import errno
import mmap
import os

from bpf._lib import ffi, lib
from bpf.errors import check
from bpf.guard_tables import GuardSpecError
from bpf.maps import INNER_MAP, MMAPABLE, NO_PREALLOC, Map, MapType

PAGE = lib.GUARD_TABLE_PAGE
MASKS = lib.GUARD_TABLE_MASKS
SLOTS = {"v4": lib.GUARD_V4_SLOTS, "v6": lib.GUARD_V6_SLOTS}
WIDTH = {"v4": 4, "v6": 16}
LOAD = 2  # slots per host: a probe stays short (about 1.5 slots on average)
GROWTH_MAX = 8  # a table that needs more than this many times its pages holds colliding hosts
DELTA_CAPACITY = 65_536  # delta entries a generation takes before a rebuild (allocated per entry)


class GuardTableHead(ctypes.Structure):
    """guard.h's guard_table_head (tests/guard checks it against the BTF)."""
    _fields_ = [("pages", ctypes.c_uint32), ("masks", ctypes.c_uint32), ("count", ctypes.c_uint32),
                ("pad", ctypes.c_uint32), ("seed", ctypes.c_uint64), ("mask", ctypes.c_uint64 * MASKS),
                ("filter", ctypes.c_uint8 * (lib.GUARD_TABLE_FILTER_BITS // 8)),
                ("spare", ctypes.c_uint8 * (PAGE - 24 - 8 * MASKS - lib.GUARD_TABLE_FILTER_BITS // 8))]


def pages_for(count: int, family: str) -> int:
    """Slot pages for `count` hosts: a power of two with LOAD slots per host, at least one."""
    need = -(-count * LOAD // SLOTS[family])
    pages = 1
    while pages < need:
        pages *= 2
    return pages


def build(family: str, groups: list[tuple[int, bytes]]) -> Map:
    """A new table holding every (mask, packed keys) group (disjoint, as host_groups
    makes them), filled before any program sees it.

    Raises GuardSpecError when the hosts fall into more distinct set masks than a table
    holds (MASKS - 1) or will not spread over GROWTH_MAX times the pages they should
    need (random seeds make that a matter of chance, not of the list), NoSpace when the
    kernel cannot allocate it.
    """
    if len(groups) > MASKS - 1:
        raise GuardSpecError(f"{family} hosts belong to {len(groups)} distinct combinations of sets, "
                             f"the guard holds {MASKS - 1}")
    width = WIDTH[family]
    count = sum(len(keys) // width for _, keys in groups)
    pages = first = pages_for(count, family)
    while pages <= first * GROWTH_MAX:
        table = Map.create(MapType.ARRAY, f"bw_{family}_table", 4, PAGE, 1 + pages,
                           flags=MMAPABLE | INNER_MAP)
        try:
            if _fill(table, pages, family, groups, count, int.from_bytes(os.urandom(8), "little")):
                return table
        except BaseException:
            table.close()
            raise
        table.close()
        pages *= 2  # a host would sit too far from its start: spread them wider, with another seed
    raise GuardSpecError(f"{count} {family} hosts do not spread over a table of {first * GROWTH_MAX} pages")


def _fill(table: Map, pages: int, family: str, groups: list[tuple[int, bytes]], count: int,
          seed: int) -> bool:
    """Lay the head and the slots out in the mmapped array. False when a probe ran long."""
    with mmap.mmap(table.fd, (1 + pages) * PAGE, mmap.MAP_SHARED,
                   mmap.PROT_READ | mmap.PROT_WRITE) as mm:
        head = GuardTableHead.from_buffer(mm)
        head.pages, head.masks, head.count, head.seed = pages, len(groups), count, seed
        for i, (mask, _) in enumerate(groups, 1):
            head.mask[i] = mask
        del head
        base = ffi.from_buffer(mm)
        try:
            for i, (_, keys) in enumerate(groups, 1):
                rc = lib.bw_table_fill(base, pages, family == "v6", keys, len(keys) // WIDTH[family], i)
                if rc == -errno.E2BIG:
                    return False
                check(rc, f"fill the {family} host table")
        finally:
            ffi.release(base)
    return True


def new_delta(family: str) -> Map:
    """An empty delta hash: a generation's own for good (emptied in place when its
    tables are rebuilt, so its outer slot is written once). When full, a change fails
    with NoSpace and the agent rebuilds the tables with the change in them."""
    return Map.create(MapType.HASH, f"bw_{family}_delta", WIDTH[family], 8, DELTA_CAPACITY,
                      flags=NO_PREALLOC)


def find(table: Map, family: str, key: bytes) -> int:
    """The mask of set ids the table (as built, without deltas) gives `key`; 0: none."""
    out = ffi.new("uint64_t *")
    found = check(lib.bw_table_find(table.fd, key, family == "v6", out), f"look up {family} host table")
    return out[0] if found else 0


def mark(table: Map, family: str, key: bytes) -> None:
    """Set key's bit in the table's delta filter, so packets consult the delta hash for it."""
    check(lib.bw_table_mark(table.fd, key, family == "v6"), f"mark {family} host table")

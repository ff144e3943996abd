"""The guard, live: load the XDP program, make its maps hold a spec, read what it counts.

Applying a spec writes the idle generation (only what differs from what that
generation last held, in batches), then flips `g_state.gen` in one map update, so
every packet is classified by one whole spec. Address sets live in inner maps swapped
in whole through the outer arrays (exact hosts in the static tables of bpf/host_table.py,
prefixes in LPM tries); a one-entry list change is a single atomic map update in the
live generation (a host's delta entry, a prefix's trie entry), a whole-list change
builds new inner maps in the idle generation and arrives with the flip.
"""
from __future__ import annotations

import array
import ctypes
import errno
import hashlib
import itertools
import operator
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from bpf import guard_tables as gt
from bpf import host_table
from bpf.errors import BpfError, MapKeyNotFound, NoSpace, NotFound, NotSupported
from bpf.maps import NO_PREALLOC, Map, MapType
from bpf.object import Object, Program

OBJECT_PATH = Path(__file__).resolve().parent / "guard.bpf.o"


# ---- layouts mirroring guard.h (tests/guard checks them against the BTF) ----
class GuardBitmap(ctypes.Structure):
    _fields_ = [("w", ctypes.c_uint64 * gt.WORDS)]


class GuardConfig(ctypes.Structure):
    _fields_ = [("words", ctypes.c_uint32), ("fields", ctypes.c_uint32),
                ("monitor", ctypes.c_uint8), ("pad", ctypes.c_uint8 * 7)]


class GuardLimit(ctypes.Structure):
    _fields_ = [("key", ctypes.c_uint8), ("prefix_v4", ctypes.c_uint8),
                ("prefix_v6", ctypes.c_uint8), ("per_byte", ctypes.c_uint8), ("pad", ctypes.c_uint8 * 4),
                ("rate", ctypes.c_uint64), ("burst", ctypes.c_uint64), ("block_ns", ctypes.c_uint64)]


class GuardAction(ctypes.Structure):
    _fields_ = [("verdict", ctypes.c_uint8), ("limits", ctypes.c_uint8), ("pad", ctypes.c_uint8 * 6),
                ("limit", GuardLimit * gt.MAX_LIMITS)]


class GuardState(ctypes.Structure):
    _fields_ = [("gen", ctypes.c_uint32), ("pad", ctypes.c_uint32), ("clock_ns", ctypes.c_uint64)]


class GuardCounter(ctypes.Structure):
    _fields_ = [("packets", ctypes.c_uint64), ("bytes", ctypes.c_uint64), ("dropped", ctypes.c_uint64)]


class GuardBucketKey(ctypes.Structure):
    _fields_ = [("slot", ctypes.c_uint32), ("family", ctypes.c_uint16), ("limit", ctypes.c_uint16),
                ("addr", ctypes.c_uint8 * 16)]


class GuardBucket(ctypes.Structure):
    _fields_ = [("tokens", ctypes.c_uint64), ("last_ns", ctypes.c_uint64),
                ("blocked_until_ns", ctypes.c_uint64)]


class GuardLpmV4(ctypes.Structure):
    _fields_ = [("prefixlen", ctypes.c_uint32), ("addr", ctypes.c_uint8 * 4)]


class GuardLpmV6(ctypes.Structure):
    _fields_ = [("prefixlen", ctypes.c_uint32), ("addr", ctypes.c_uint8 * 16)]


class GuardSample(ctypes.Structure):
    _fields_ = [("time_ns", ctypes.c_uint64), ("rule", ctypes.c_uint32), ("family", ctypes.c_uint8),
                ("proto", ctypes.c_uint8), ("dport", ctypes.c_uint16), ("src", ctypes.c_uint8 * 16),
                ("dst", ctypes.c_uint8 * 16), ("sport", ctypes.c_uint16), ("length", ctypes.c_uint16),
                ("pad", ctypes.c_uint32)]


LAYOUTS = {
    "guard_table_head": host_table.GuardTableHead,
    "guard_bitmap": GuardBitmap, "guard_config": GuardConfig, "guard_action": GuardAction,
    "guard_limit": GuardLimit,
    "guard_state": GuardState, "guard_counter": GuardCounter, "guard_bucket_key": GuardBucketKey,
    "guard_bucket": GuardBucket, "guard_lpm_v4": GuardLpmV4, "guard_lpm_v6": GuardLpmV6,
    "guard_sample": GuardSample,
}

# per family: the outer maps (one slot per generation) of its exact hosts' static table
# and delta hash (bpf/host_table.py), and of its prefixes' LPM trie (key size)
FAMILIES = {
    "v4": {"table": "g_v4_table", "delta": "g_v4_delta", "nets": "g_v4_nets", "net_key": 8},
    "v6": {"table": "g_v6_table", "delta": "g_v6_delta", "nets": "g_v6_nets", "net_key": 20},
}
PINNED_MAPS = ("g_state", "g_config", "g_actions", "g_counters", "g_small", "g_rclass", "g_rbits",
               "g_sets", "g_buckets", "g_samples", "g_v4_table", "g_v4_delta", "g_v4_nets",
               "g_v6_table", "g_v6_delta", "g_v6_nets")


@dataclass(frozen=True)
class RuleCounters:
    packets: int
    bytes: int
    dropped: int


def pack_address_keys(table: str, entries) -> bytes:
    """Kernel keys for an address table, packed in one go (the fast path for millions);
    bytes are a packed list's host table, which already is the keys."""
    if isinstance(entries, bytes):
        return entries
    if table == "v4_hosts":
        keys = array.array("I", entries)  # native order; the kernel key is big-endian
        if sys.byteorder == "little":
            keys.byteswap()
        return keys.tobytes()
    if table == "v6_hosts":
        return b"".join(a.to_bytes(16, "big") for a in entries)
    width = 4 if table == "v4_nets" else 16
    return b"".join(p.to_bytes(4, "little") + a.to_bytes(width, "big") for a, p in entries)


class Guard:
    """The guard program and its maps, loaded (and optionally reusing pinned maps).

    Raises VerifierRejected when the kernel refuses the program, NoSpace when a set
    cannot be allocated, GuardSpecError (a ValueError) for a spec that does not fit.
    """

    def __init__(self, *, object_path: str | os.PathLike = OBJECT_PATH,
                 pinned: str | os.PathLike | None = None):
        self.object = Object(object_path)
        self._reused: list[Map] = []
        self._stale: list[str] = []  # pinned by a build with another layout: not reused
        if pinned is not None:
            for name in PINNED_MAPS:
                path = Path(pinned) / name
                if path.exists():
                    existing = Map.open_pinned(path)
                    if (int(existing.type), existing.key_size, existing.value_size) != \
                            self.object.map_layout(name):
                        existing.close()
                        self._stale.append(name)
                        continue
                    self._reused.append(existing)
                    self.object.reuse_map(name, existing)
        self.object.load()
        self.program: Program = self.object.program("xdp_guard")
        m = self.object.map
        self.state = m("g_state", key_type=ctypes.c_uint32, value_type=GuardState)
        self.config = m("g_config", key_type=ctypes.c_uint32, value_type=GuardConfig)
        self.actions = m("g_actions", key_type=ctypes.c_uint32, value_type=GuardAction)
        self.counters_map = m("g_counters", key_type=ctypes.c_uint32, value_type=GuardCounter)
        self.small = m("g_small", key_type=ctypes.c_uint32)
        self.rclass = m("g_rclass", key_type=ctypes.c_uint32, value_type=ctypes.c_uint16)
        self.rbits = m("g_rbits", key_type=ctypes.c_uint32)
        self.sets_map = m("g_sets", key_type=ctypes.c_uint32)
        self.buckets = m("g_buckets", key_type=GuardBucketKey, value_type=GuardBucket)
        self.outer = {f"{family}_{role}": m(names[role], key_type=ctypes.c_uint32, value_type=ctypes.c_uint32)
                      for family, names in FAMILIES.items() for role in ("table", "delta", "nets")}
        self._tables: dict[int, gt.Tables] = {}  # what each generation's rule maps hold
        self._inner: dict[int, dict[str, Map]] = {0: {}, 1: {}}
        self._content: dict[int, object] = {0: None, 1: None}  # what the gen's sets hold
        self._digest: dict[int, dict[str, bytes | None]] = {0: {}, 1: {}}  # per table/trie
        self._delta_keys: dict[int, dict[str, set[bytes]]] = {0: {}, 1: {}}  # in each delta hash
        self._nets: dict[str, dict[tuple[int, int], int]] = {}  # live prefixes' own masks
        self.spec: gt.GuardSpec | None = None

    # ---- lifetime ----
    def pin_maps(self, directory: str | os.PathLike) -> None:
        """Pin every stateful map under directory (which must be on a bpffs); a pin left
        by a build whose layout differs (not reused, see __init__) is replaced."""
        for name in PINNED_MAPS:
            path = Path(directory) / name
            if name in self._stale and path.exists():
                path.unlink()
            if not path.exists():
                self.object.map(name).pin(path)

    def close(self) -> None:
        for inner in (*self._inner[0].values(), *self._inner[1].values()):
            inner.close()
        for existing in self._reused:
            existing.close()
        self.object.close()

    def __enter__(self) -> "Guard":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- generations ----
    @property
    def generation(self) -> int:
        return self.state[0].gen & 1

    def set_clock(self, now_ns: int) -> None:
        """Tests only: make rate limits use this time (0 returns to the real clock)."""
        st = self.state[0]
        st.clock_ns = now_ns
        self.state[0] = st

    def apply(self, spec: gt.GuardSpec, *, content_id: object | None = None) -> None:
        """Make the guard enforce `spec`, atomically: write the idle generation, then flip.

        `content_id` names the sets' contents (e.g. list revisions); equal ids let the
        new generation share the live address maps instead of rebuilding them.
        Raises GuardSpecError for a spec the guard cannot hold; nothing changes then.
        """
        tables = gt.build_tables(spec)  # may raise before anything is written
        live = self.generation
        idle = 1 - live
        self._write_rules(idle, tables)
        self._write_sets(idle, live, spec, content_id)
        self._reset_counters(idle)
        self._forget_buckets(idle)
        st = self.state[0]
        st.gen = idle
        self.state[0] = st  # the flip: one array update
        self.spec = spec

    def _write_rules(self, gen: int, t: gt.Tables) -> None:
        """The rule tables of one generation: only the entries that differ from what it
        holds (derived from the Tables it was last given, so nothing extra is kept);
        parts that are equal are not even laid out, so a list-only change writes none."""
        prev = self._tables.pop(gen, None)  # unknown until every write below has landed
        for part, layout in RULE_PARTS.items():
            if prev is not None and getattr(prev, part) == getattr(t, part):
                continue
            old = layout(gen, prev) if prev is not None else {}
            for map_name, entries in layout(gen, t).items():
                before = old.get(map_name, {})
                changed = [(k, v) for k, v in entries.items() if before.get(k) != v]
                if changed:
                    getattr(self, map_name).update_batch(
                        b"".join(k.to_bytes(4, "little") for k, _ in changed),
                        b"".join(v for _, v in changed))
        self._tables[gen] = t
        self.config[gen] = GuardConfig(words=t.words, fields=t.fields, monitor=int(t.monitor))

    def _write_sets(self, idle: int, live: int, spec: gt.GuardSpec, content_id) -> None:
        """The idle generation's address maps. Each outer-slot write costs a
        synchronize_rcu in the kernel (8-20 ms here), so a slot is written only when the
        map it should hold changes: a table or trie whose content (by digest) the slot
        already holds is kept, and the delta hashes are the generation's own for good
        (emptied in place, or given the live one's entries when the sets are shared)."""
        held, live_maps = self._inner[idle], self._inner[live]
        sharing = content_id is not None and content_id == self._content[live] and bool(live_maps)
        built: dict[str, Map] = {}
        digests: dict[str, bytes | None] = {}
        try:
            for family in FAMILIES:
                for role, make in self._sources(family, spec, sharing):
                    if sharing:
                        built[role], digests[role] = live_maps[role], self._digest[live].get(role)
                        continue
                    digest, fresh = make
                    digests[role] = digest
                    kept = held.get(role) if self._digest[idle].get(role) == digest else None
                    built[role] = kept if kept is not None else fresh()
        except BaseException:
            for role, m in built.items():
                if m is not held.get(role) and m is not live_maps.get(role):
                    m.close()
            raise
        for family in FAMILIES:
            role = f"{family}_delta"
            built[role] = held[role] if role in held else host_table.new_delta(family)
            self._clear_delta(idle, family, built[role] if role in held else None)
            if sharing:
                self._copy_delta(live, idle, family, built[role])
        for role, m in built.items():
            if held.get(role) is not m:
                self.outer[role][idle] = m.fd
        keep = {id(m) for m in (*built.values(), *live_maps.values())}
        for m in held.values():
            if id(m) not in keep:
                m.close()  # the outer array held the last reference that matters
        self._inner[idle], self._digest[idle], self._content[idle] = built, digests, content_id
        if not sharing:
            self._nets = {family: {} for family in FAMILIES}
            for set_id, contents in spec.sets.items():
                for family, own in self._nets.items():
                    for net in getattr(contents, f"{family}_nets"):
                        own[net] = own.get(net, 0) | 1 << set_id

    def _sources(self, family: str, spec: gt.GuardSpec, sharing: bool):
        """(role, (digest, build)) of a family's table and trie for spec; nothing is laid
        out when the live maps are shared."""
        if sharing:
            yield f"{family}_table", None
            yield f"{family}_nets", None
            return
        hosts = [(mask, pack_address_keys(f"{family}_hosts", h)) for mask, h in gt.host_groups(spec.sets, family)]
        yield f"{family}_table", (_digest(hosts), lambda: host_table.build(family, hosts))
        entries = gt.net_masks(spec.sets, family)
        nets = [(mask, pack_address_keys(f"{family}_nets", sorted(n for n, m in entries.items() if m == mask)))
                for mask in sorted(set(entries.values()))]
        yield f"{family}_nets", (_digest(nets), lambda: self._new_nets(family, nets))

    def _clear_delta(self, gen: int, family: str, delta: Map | None) -> None:
        """Empty the generation's delta hash of the keys it was given."""
        keys = self._delta_keys[gen].get(family)
        if keys and delta is not None:
            delta.delete_batch(b"".join(keys))
        self._delta_keys[gen][family] = set()

    def _copy_delta(self, live: int, idle: int, family: str, target: Map) -> None:
        keys = self._delta_keys[live].get(family) or set()
        if keys:
            source = self._inner[live][f"{family}_delta"]
            target.update_batch(b"".join(keys), b"".join(source.get(k) for k in keys))
        self._delta_keys[idle][family] = set(keys)

    @staticmethod
    def _new_nets(family: str, groups: list[tuple[int, bytes]]) -> Map:
        """A new LPM trie holding every (mask, packed prefixes) group, filled before it is live."""
        key_size = FAMILIES[family]["net_key"]
        count = sum(len(keys) for _, keys in groups) // key_size
        inner = Map.create(MapType.LPM_TRIE, f"bw_{family}_nets", key_size, 8, max(1024, count + count // 4),
                           flags=NO_PREALLOC)
        try:
            for mask, keys in groups:
                inner.update_batch(keys, mask.to_bytes(8, "little") * (len(keys) // key_size))
        except BaseException:
            inner.close()
            raise
        return inner

    def _reset_counters(self, gen: int) -> None:
        zero = bytes(ctypes.sizeof(GuardCounter))
        keys = b"".join((gen * gt.SLOTS + s).to_bytes(4, "little") for s in range(gt.SLOTS))
        ncpus = self.counters_map.ncpus
        self.counters_map.update_batch(keys, zero * (gt.SLOTS * ncpus))

    def _forget_buckets(self, gen: int) -> None:
        """Drop the rate-limit state of a generation about to take a new spec."""
        lo, hi = gen * gt.SLOTS, (gen + 1) * gt.SLOTS
        size = self.buckets.key_size
        try:
            keys, _, count = self.buckets.lookup_batch_raw()
            every = (keys[i * size:(i + 1) * size] for i in range(count))
        except NotSupported:
            every = self.buckets.raw_keys()
        stale = [k for k in every if lo <= int.from_bytes(k[:4], "little") < hi]
        for key in stale:
            try:
                self.buckets.delete(key)
            except MapKeyNotFound:
                pass  # evicted meanwhile

    # ---- list deltas on the live generation ----
    def update_set(self, set_id: int, *, added=(), removed=()) -> int:
        """Add/remove entries (addresses or prefixes) of one set in the live maps.

        Each entry changes with one map update, so a packet sees it before or after,
        never half. Returns the number of kernel updates made.
        """
        live = self.generation
        if not self._inner[live]:
            raise BpfError(errno.EINVAL, "apply a spec before updating its sets")
        bit = 1 << set_id
        ops = 0
        for entry, adding in [(e, True) for e in added] + [(e, False) for e in removed]:
            ops += self._update_entry(live, gt.AddressSet.of([entry]), bit, adding)
        self._content[live] = object()  # no longer what any content id named
        if self._inner[1 - live] is not self._inner[live]:
            self._content[1 - live] = None
        return ops

    def _update_entry(self, live: int, one: gt.AddressSet, bit: int, adding: bool) -> int:
        for family in FAMILIES:
            if getattr(one, f"{family}_nets"):
                return self._update_net(live, f"{family}_nets", family,
                                        next(iter(getattr(one, f"{family}_nets"))), bit, adding)
            if getattr(one, f"{family}_hosts"):
                return self._update_host(live, family, next(iter(getattr(one, f"{family}_hosts"))), bit, adding)
        return 0

    def _update_host(self, live: int, family: str, host: int, bit: int, adding: bool) -> int:
        """The host's whole new mask into the delta hash: one map update a packet sees
        before or after (its filter bit is set first, which alone changes no answer)."""
        inner = self._inner[live]
        key = pack_address_keys(f"{family}_hosts", [host])
        current = inner[f"{family}_delta"].get(key, None)
        mask = int.from_bytes(current, "little") if current is not None else \
            host_table.find(inner[f"{family}_table"], family, key)
        mask = mask | bit if adding else mask & ~bit
        host_table.mark(inner[f"{family}_table"], family, key)
        self._delta_keys[live].setdefault(family, set()).add(key)
        self._set_inner(live, f"{family}_delta", key, mask)
        return 1

    def _update_net(self, live: int, table: str, family: str, net: tuple[int, int], bit: int,
                    adding: bool) -> int:
        own = self._nets.setdefault(family, {})
        mask = own.get(net, 0)
        own[net] = mask | bit if adding else mask & ~bit
        if not own[net]:
            del own[net]
        width = 32 if family == "v4" else 128
        addr, plen = net
        last = addr | ((1 << (width - plen)) - 1)
        # the entry itself and every prefix inside it carry this membership
        affected = [n for n in own if addr <= n[0] and (n[0] | ((1 << (width - n[1])) - 1)) <= last]
        inner = self._inner[live][table]
        for gen in (0, 1):  # edited in place: no longer what its digest names, in any gen holding it
            if self._inner[gen].get(table) is inner:
                self._digest[gen][table] = None
        ops = 0
        if net not in own:
            inner.delete(pack_address_keys(table, [net]))
            ops += 1
        for n in affected:
            mask = self._closure(own, n, width)
            self._set_inner(live, table, pack_address_keys(table, [n]), mask)
            ops += 1
        return ops

    @staticmethod
    def _closure(own: dict[tuple[int, int], int], net: tuple[int, int], width: int) -> int:
        addr, plen = net
        mask = 0
        for (a, p), m in own.items():
            if p <= plen and (addr >> (width - p) if p else 0) == (a >> (width - p) if p else 0):
                mask |= m
        return mask

    def _set_inner(self, live: int, table: str, key: bytes, mask: int) -> None:
        inner = self._inner[live][table]
        try:
            inner.set(key, mask.to_bytes(8, "little"))
        except NoSpace:
            raise NoSpace(errno.E2BIG, f"{table} is full ({inner.max_entries}): re-apply the spec "
                          "to grow it") from None

    # ---- reading ----
    def counters(self) -> dict[int, RuleCounters]:
        """Per-rule counters of the live generation, summed over CPUs (rule index,
        gt.RULE_DEFAULT, gt.RULE_MALFORMED); slots that saw nothing are left out."""
        return live_counters(self.counters_map, self.generation)


def live_counters(counters_map: Map, gen: int) -> dict[int, RuleCounters]:
    """The per-CPU counters of generation `gen` in g_counters, summed: the one reading of
    that map, for a loaded Guard and for the read-only view of the pins alike. Summed in
    C-level passes over the whole buffer (the agent reads it every second; a Python loop
    over its 2,052 slots and every CPU cost it 2 ms a second, idle)."""
    keys, values, count = counters_map.lookup_batch_raw()
    ncpus = counters_map.ncpus
    nfields = ctypes.sizeof(GuardCounter) // 8
    words = array.array("Q")
    words.frombytes(values)  # (slot, cpu, field) order, one u64 each
    step = ncpus * nfields
    sums = []
    for field in range(nfields):
        total = words[field::step]
        for cpu in range(1, ncpus):
            total = array.array("Q", map(operator.add, total, words[cpu * nfields + field::step]))
        sums.append(total)
    slots = array.array("I")
    slots.frombytes(keys)
    packets, bytes_, dropped = sums
    lo, hi = gen * gt.SLOTS, (gen + 1) * gt.SLOTS
    return {slots[i] % gt.SLOTS: RuleCounters(packets[i], bytes_[i], dropped[i])
            for i in itertools.compress(range(count), packets) if lo <= slots[i] < hi}


class PinnedView:
    """What a guard pinned in a directory is doing, read without loading the program or
    opening more than the two maps it needs (`bulwark agent status`, the demo's view).
    Raises NotFound when nothing is pinned there."""

    def __init__(self, directory: str | os.PathLike) -> None:
        directory = Path(directory)
        if not (directory / "g_state").exists():
            raise NotFound(errno.ENOENT, f"no guard maps pinned in {directory}")
        self._state = Map.open_pinned(directory / "g_state", key_type=ctypes.c_uint32, value_type=GuardState)
        try:
            self._counters = Map.open_pinned(directory / "g_counters", key_type=ctypes.c_uint32,
                                             value_type=GuardCounter)
        except BaseException:
            self._state.close()
            raise

    @property
    def generation(self) -> int:
        return self._state[0].gen & 1

    def counters(self) -> dict[int, RuleCounters]:
        return live_counters(self._counters, self.generation)

    def close(self) -> None:
        self._state.close()
        self._counters.close()

    def __enter__(self) -> "PinnedView":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---- what each part of Tables puts in which map, for one generation ----
def small_entries(gen: int, t: gt.Tables) -> dict[str, dict[int, bytes]]:
    nsmall, nvalues = len(gt.SMALL_FIELDS), 257
    return {"small": {(gen * nsmall + f) * nvalues + v: gt.pack_bitmap(bits)
                      for (f, v), bits in t.small.items()}}


def range_entries(gen: int, t: gt.Tables) -> dict[str, dict[int, bytes]]:
    classes: dict[int, bytes] = {}
    rbits: dict[int, bytes] = {}
    nrange = len(gt.RANGE_FIELDS)
    for f, table in enumerate(t.ranges):
        base = (gen * nrange + f) * 65537
        for value, cls in enumerate(table.class_array()):
            classes[base + value] = cls.to_bytes(2, "little")
        cbase = (gen * nrange + f) * gt.MAX_CLASSES
        for cls, bits in enumerate(table.bitmaps):
            rbits[cbase + cls] = gt.pack_bitmap(bits)
    return {"rclass": classes, "rbits": rbits}


def set_entries(gen: int, t: gt.Tables) -> dict[str, dict[int, bytes]]:
    nslots = gt.MAX_SETS + 1
    sets = {(gen * 2 + f) * nslots + slot: gt.pack_bitmap(0) for f in range(2) for slot in range(nslots)}
    for (f, slot), bits in t.sets.items():
        sets[(gen * 2 + f) * nslots + slot] = gt.pack_bitmap(bits)
    return {"sets_map": sets}


def action_entries(gen: int, t: gt.Tables) -> dict[str, dict[int, bytes]]:
    actions = {gen * gt.SLOTS + slot: bytes(GuardAction()) for slot in range(gt.SLOTS)}
    for slot, action in t.actions.items():
        limits = [GuardLimit(key=gt.LIMIT_KEYS[lim.key], prefix_v4=lim.prefix_v4,
                             prefix_v6=lim.prefix_v6, per_byte=int(lim.per_byte), rate=lim.rate,
                             burst=lim.burst, block_ns=lim.block_ns) for lim in action.limits]
        actions[gen * gt.SLOTS + slot] = bytes(GuardAction(
            verdict=gt.VERDICTS[action.verdict], limits=len(limits),
            limit=(GuardLimit * gt.MAX_LIMITS)(*limits)))
    return {"actions": actions}


RULE_PARTS = {"small": small_entries, "ranges": range_entries, "sets": set_entries,
              "actions": action_entries}

def _digest(groups: list[tuple[int, bytes]]) -> bytes:
    """What a table or trie is built from, named: equal digests, equal contents."""
    h = hashlib.sha256()
    for mask, keys in groups:
        h.update(mask.to_bytes(8, "little"))
        h.update(len(keys).to_bytes(8, "little"))
        h.update(keys)
    return h.digest()


def open_pinned_guard(directory: str | os.PathLike) -> Guard:
    """A Guard reusing the maps pinned in directory. Raises NotFound when none are."""
    if not (Path(directory) / "g_state").exists():
        raise NotFound(errno.ENOENT, f"no guard maps pinned in {directory}")
    return Guard(pinned=directory)

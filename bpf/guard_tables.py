"""What the guard's maps must hold for a set of rules: pure, no kernel calls. Its constants
come from guard.h through the native build (cffi_build.py), never re-typed here.

The guard classifies with the Linear Bit Vector Search (Miano et al., bpf-iptables):
every field maps the packet's value to a bitmap of the rules that accept it; the AND of
those bitmaps holds the matching rules and the lowest bit wins. This module turns
`GuardSpec` (rules as per-field constraints, sets as address lists) into those bitmaps:

- small fields (family, protocol, TCP flags, ICMP type, TTL, fragment) get one bitmap
  per value 0..255 plus NONE for packets that do not carry the field;
- range fields (ports, length) split 0..65535 into elementary intervals ("classes"):
  value -> class id, class -> bitmap;
- address fields look up which sets hold the address (a 64-bit mask of set ids, exact
  hosts in a hash and prefixes in an LPM trie whose entries carry the sets of every
  enclosing prefix too) and OR the bitmaps of those sets with the "any address" bitmap.

Bitmaps are Python ints (bit r = rule r) until they are packed for the kernel.
"""
from __future__ import annotations

import bisect
import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

# The kernel contract's constants, compiled from guard.h by the native build.
from bpf._native import lib as _guard_h
from rules_dsl.addresses import Packed, host_ints

MAX_RULES = _guard_h.GUARD_MAX_RULES
WORDS = _guard_h.GUARD_WORDS
MAX_SETS = _guard_h.GUARD_MAX_SETS
MAX_CLASSES = _guard_h.GUARD_MAX_CLASSES
SMALL_NONE = _guard_h.GUARD_SMALL_NONE
RANGE_NONE = _guard_h.GUARD_RANGE_NONE
SMALL_FIELDS = ("family", "proto", "flags", "icmp", "ttl", "frag")
RANGE_FIELDS = ("sport", "dport", "length")
ADDR_FIELDS = ("src", "dst")
RULE_DEFAULT = _guard_h.GUARD_RULE_DEFAULT
RULE_MALFORMED = _guard_h.GUARD_RULE_MALFORMED
SLOTS = _guard_h.GUARD_SLOTS
MAX_LIMITS = _guard_h.GUARD_MAX_LIMITS  # stacked limits per rule
LENGTH_MAX = _guard_h.GUARD_LENGTH_MAX

VERDICTS = {"pass": 0, "drop": 1, "limit": 2}
LIMIT_KEYS = {"global": 0, "src": 1, "dst": 2}


class GuardSpecError(ValueError):
    """A spec the guard cannot hold (too many rules, sets or range classes)."""


Range = tuple[int, int]  # inclusive


@dataclass(frozen=True)
class Limit:
    """One token bucket of a limited rule."""
    key: str = "global"  # global | src | dst
    prefix_v4: int = 32
    prefix_v6: int = 128
    per_byte: bool = False
    rate: int = 0  # tokens per second
    burst: int = 0
    block_ns: int = 0


@dataclass(frozen=True)
class Action:
    verdict: str  # pass | drop | limit
    limits: tuple[Limit, ...] = ()  # for limit: stacked, in order, 1..MAX_LIMITS


PASS = Action("pass")
DROP = Action("drop")


@dataclass(frozen=True)
class Rule:
    """One rule: per field, None (any) or what it accepts."""

    action: Action
    src: int | None = None  # set id
    dst: int | None = None
    family: frozenset[int] | None = None  # 0: ipv4, 1: ipv6
    proto: frozenset[int] | None = None
    flags: tuple[tuple[int, int], ...] | None = None  # any of (mask, value)
    icmp: frozenset[int] | None = None
    ttl: tuple[Range, ...] | None = None
    frag: frozenset[int] | None = None  # 0 none, 1 first, 2 later
    sport: tuple[Range, ...] | None = None
    dport: tuple[Range, ...] | None = None
    length: tuple[Range, ...] | None = None


@dataclass(frozen=True)
class AddressSet:
    """Contents of one set, split the way the data plane stores them."""

    v4_hosts: frozenset[int] = frozenset()
    v4_nets: frozenset[tuple[int, int]] = frozenset()  # (network int, prefix length)
    v6_hosts: frozenset[int] = frozenset()
    v6_nets: frozenset[tuple[int, int]] = frozenset()

    @classmethod
    def of(cls, entries: Iterable[str | ipaddress.IPv4Network | ipaddress.IPv6Network]) -> AddressSet:
        """Raises AddressError (a ValueError) naming an entry that is not an address or prefix."""
        return cls.decoded(Packed([e if isinstance(e, str) else str(e) for e in entries]))

    @classmethod
    def decoded(cls, packed: Packed) -> AddressSet:
        return cls(frozenset(packed.host_ints("v4")), frozenset(packed.nets("v4")),
                   frozenset(packed.host_ints("v6")), frozenset(packed.nets("v6")))

    def host_count(self, family: str) -> int:
        return len(getattr(self, f"{family}_hosts"))


class PackedSet:
    """A set whose contents are one list in the packed form (rules_dsl.addresses): its host
    tables are already the host maps' keys, so a set held by one list loads into the
    kernel straight from the buffer. The AddressSet fields are decoded only if asked for
    (a set that shares hosts with another set, a test)."""

    __slots__ = ("__dict__", "packed")

    def __init__(self, packed: Packed):
        self.packed = packed

    def host_keys(self, family: str) -> bytes:
        return self.packed.table(f"{family}_hosts")

    def host_count(self, family: str) -> int:
        return self.packed.count(f"{family}_hosts")

    def __bool__(self) -> bool:
        return bool(self.packed)

    @functools.cached_property
    def v4_hosts(self) -> frozenset[int]:
        return frozenset(self.packed.host_ints("v4"))

    @functools.cached_property
    def v6_hosts(self) -> frozenset[int]:
        return frozenset(self.packed.host_ints("v6"))

    @functools.cached_property
    def v4_nets(self) -> frozenset[tuple[int, int]]:
        return frozenset(self.packed.nets("v4"))

    @functools.cached_property
    def v6_nets(self) -> frozenset[tuple[int, int]]:
        return frozenset(self.packed.nets("v6"))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PackedSet):
            return self.packed == other.packed
        if isinstance(other, AddressSet):
            return AddressSet(self.v4_hosts, self.v4_nets, self.v6_hosts, self.v6_nets) == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.packed)

    def __repr__(self) -> str:
        return f"PackedSet({self.packed!r})"


@dataclass(frozen=True)
class GuardSpec:
    rules: tuple[Rule, ...]
    default: Action = PASS
    malformed: Action = DROP
    monitor: bool = False
    sets: dict[int, AddressSet] = field(default_factory=dict)


def small_value_sets(rule: Rule) -> dict[str, Iterable[int] | None]:
    """For each small field, the values (0..255) a rule accepts, or None for any."""
    flags = None
    if rule.flags is not None:
        flags = [v for v in range(256) if any(v & m == val for m, val in rule.flags)]
    ttl = None if rule.ttl is None else [v for v in range(256) if in_ranges(v, rule.ttl)]
    return {"family": rule.family, "proto": rule.proto, "flags": flags, "icmp": rule.icmp,
            "ttl": ttl, "frag": rule.frag}


def in_ranges(value: int, ranges: Iterable[Range]) -> bool:
    return any(lo <= value <= hi for lo, hi in ranges)


@dataclass(frozen=True)
class RangeTable:
    """Elementary intervals of one range field: starts[i]..starts[i+1]-1 is class i."""

    starts: tuple[int, ...]
    bitmaps: tuple[int, ...]  # per class; the last class is NONE (no value)

    def class_of(self, value: int) -> int:
        if value == RANGE_NONE:
            return len(self.starts)
        return bisect.bisect_right(self.starts, value) - 1

    def class_array(self) -> list[int]:
        """value -> class for 0..65536, as the kernel's array holds it."""
        out = []
        for i, start in enumerate(self.starts):
            end = self.starts[i + 1] if i + 1 < len(self.starts) else 65536
            out.extend([i] * (end - start))
        out.append(len(self.starts))
        return out


def range_table(rules: tuple[Rule, ...], name: str) -> RangeTable:
    cuts = {0}
    for rule in rules:
        for lo, hi in getattr(rule, name) or ():
            cuts.add(lo)
            if hi + 1 <= 65535:
                cuts.add(hi + 1)
    starts = tuple(sorted(cuts))
    if len(starts) + 1 > MAX_CLASSES:
        raise GuardSpecError(f"{name}: {len(starts)} distinct ranges, the guard holds {MAX_CLASSES - 1}")
    any_bits = 0
    bitmaps = [0] * len(starts)
    for r, rule in enumerate(rules):
        ranges = getattr(rule, name)
        if ranges is None:
            any_bits |= 1 << r
            continue
        for lo, hi in ranges:  # a range covers whole classes, by construction of the cuts
            for c in range(bisect.bisect_left(starts, lo), bisect.bisect_right(starts, hi)):
                bitmaps[c] |= 1 << r
    return RangeTable(starts, tuple(b | any_bits for b in bitmaps) + (any_bits,))


@dataclass(frozen=True)
class Tables:
    """Everything one generation of the guard's rule maps holds."""

    words: int
    fields: int  # GUARD_USE_* bits
    monitor: bool
    small: dict[tuple[int, int], int]  # (field index, value) -> bitmap
    ranges: tuple[RangeTable, ...]
    sets: dict[tuple[int, int], int]  # (addr field index, set slot) -> bitmap
    actions: dict[int, Action]  # slot -> action


def use_small(f: int) -> int:
    return 1 << f


def use_range(f: int) -> int:
    return 1 << (8 + f)


def use_addr(f: int) -> int:
    return 1 << (12 + f)


def build_tables(spec: GuardSpec) -> Tables:
    """The rule maps' contents for a spec. Raises GuardSpecError when it does not fit."""
    rules = spec.rules
    if len(rules) > MAX_RULES:
        raise GuardSpecError(f"{len(rules)} rules, the guard holds {MAX_RULES}")
    bad = [s for s in spec.sets if not 0 <= s < MAX_SETS]
    if bad:
        raise GuardSpecError(f"set ids {bad} outside 0..{MAX_SETS - 1}")
    for r, rule in enumerate(rules):
        if (rule.action.verdict == "limit") != bool(rule.action.limits) or \
                len(rule.action.limits) > MAX_LIMITS:
            raise GuardSpecError(f"rule {r}: a limit rule holds 1..{MAX_LIMITS} limits, others none")
    # family is always looked at: its bitmaps hold exactly the rules that exist, so a
    # packet never matches a rule past the end (and with no rules, none at all)
    fields = use_small(SMALL_FIELDS.index("family"))
    small: dict[tuple[int, int], int] = {}
    accepts = [small_value_sets(rule) for rule in rules]
    for f, name in enumerate(SMALL_FIELDS):
        if any(a[name] is not None for a in accepts):
            fields |= use_small(f)
        any_bits = 0
        per_value = [0] * 257
        for r, accepted in enumerate(accepts):
            values = accepted[name]
            if values is None:
                any_bits |= 1 << r
            else:
                for v in values:
                    per_value[v] |= 1 << r
        for v, bits in enumerate(per_value):
            small[(f, v)] = bits | any_bits
    ranges = tuple(range_table(rules, name) for name in RANGE_FIELDS)
    for f, name in enumerate(RANGE_FIELDS):
        if any(getattr(rule, name) is not None for rule in rules):
            fields |= use_range(f)
    sets: dict[tuple[int, int], int] = {}
    for f, name in enumerate(ADDR_FIELDS):
        any_bits = 0
        for r, rule in enumerate(rules):
            set_id = getattr(rule, name)
            if set_id is None:
                any_bits |= 1 << r
            else:
                if set_id not in spec.sets:
                    raise GuardSpecError(f"rule {r} names set {set_id}, which the spec lacks")
                sets[(f, set_id)] = sets.get((f, set_id), 0) | 1 << r
                fields |= use_addr(f)
        sets[(f, MAX_SETS)] = any_bits
    actions = {r: rule.action for r, rule in enumerate(rules)}
    actions[RULE_DEFAULT] = spec.default
    actions[RULE_MALFORMED] = spec.malformed
    return Tables(words=max(1, -(-len(rules) // 64)), fields=fields, monitor=spec.monitor,
                  small=small, ranges=ranges, sets=sets, actions=actions)


# ---- address membership -------------------------------------------------------

def host_groups(sets: dict[int, AddressSet | PackedSet], family: str
                ) -> list[tuple[int, frozenset[int] | bytes]]:
    """Exact hosts grouped by the mask of set ids listing them: [(mask, hosts)], hosts
    as ints or, when one packed set alone holds this family's hosts (the big list), as
    its table of kernel keys, untouched.

    Partition refinement with set operations, so a million hosts in several sets cost a
    few C-level passes rather than a Python loop per host.
    """
    holders = [(i, c) for i, c in sorted(sets.items()) if c.host_count(family)]
    if len(holders) == 1 and isinstance(holders[0][1], PackedSet):
        set_id, contents = holders[0]
        return [(1 << set_id, contents.host_keys(family))]
    parts: list[tuple[int, frozenset[int]]] = []
    for set_id, contents in holders:
        remaining = getattr(contents, f"{family}_hosts")
        bit = 1 << set_id
        refined = []
        for mask, hosts in parts:
            inter = hosts & remaining if remaining else frozenset()
            if inter:
                refined.append((mask | bit, inter))
                hosts = hosts - inter
                remaining = remaining - inter
            if hosts:
                refined.append((mask, hosts))
        if remaining:
            refined.append((bit, frozenset(remaining)))
        parts = refined
    return parts


def host_masks(sets: dict[int, AddressSet], family: str) -> dict[int, int]:
    """Exact host address -> mask of the set ids listing it."""
    out = {}
    for mask, hosts in host_groups(sets, family):
        if isinstance(hosts, bytes):
            hosts = host_ints(family, hosts)
        out.update(dict.fromkeys(hosts, mask))
    return out


def net_masks(sets: dict[int, AddressSet], family: str) -> dict[tuple[int, int], int]:
    """Prefix -> mask of the sets holding it or any prefix enclosing it.

    An LPM lookup returns only the longest matching prefix, so each entry carries the
    memberships of the shorter prefixes around it (computed once, in sorted order).
    """
    own: dict[tuple[int, int], int] = {}
    for set_id, contents in sets.items():
        for net in getattr(contents, f"{family}_nets"):
            own[net] = own.get(net, 0) | 1 << set_id
    width = 32 if family == "v4" else 128
    out: dict[tuple[int, int], int] = {}
    stack: list[tuple[int, int, int]] = []  # (first, last, closed mask) of enclosing nets
    for addr, plen in sorted(own, key=lambda n: (n[0], n[1])):
        last = addr | ((1 << (width - plen)) - 1)
        while stack and not (stack[-1][0] <= addr and last <= stack[-1][1]):
            stack.pop()
        mask = own[(addr, plen)] | (stack[-1][2] if stack else 0)
        out[(addr, plen)] = mask
        stack.append((addr, last, mask))
    return out


def pack_bitmap(bits: int) -> bytes:
    return bits.to_bytes(WORDS * 8, "little")

"""From a compiled Plan (rules_dsl) to the guard's spec: the one place that reads
the Plan's XDP part for the data plane. Pure: no kernel.

Hub-managed lists arrive separately (`lists`: list name -> entries); a set's contents
are its inline entries plus those of every list it names. Entries of a million-entry
list are parsed with `socket.inet_pton` rather than `ipaddress`, which is several
times slower per entry.
"""
from __future__ import annotations

import array
import functools
import socket
import sys
from collections.abc import Iterable, Mapping

from bpf import guard_tables as gt
from rules_dsl.plan import Plan, RateProfile, XdpRule

NS = 1_000_000_000


def split_entries(entries: Iterable[str]) -> gt.AddressSet:
    """Addresses and prefixes (text) split into the four kernel tables.

    Raises ValueError naming the first entry that is not an address or prefix.
    """
    entries = entries if isinstance(entries, (list, tuple)) else list(entries)
    hosts = v4_hosts_fast(entries)
    if hosts is not None:
        return gt.AddressSet(v4_hosts=hosts)
    v4h, v4n, v6h, v6n = set(), set(), set(), set()
    for entry in entries:
        addr, slash, plen = entry.partition("/")
        try:
            if slash and not plen.isdigit():
                raise ValueError
            if ":" in addr:
                value, width, hosts, nets = int.from_bytes(socket.inet_pton(socket.AF_INET6, addr), "big"), 128, v6h, v6n
            else:
                value, width, hosts, nets = int.from_bytes(_PTON4(addr), "big"), 32, v4h, v4n
            length = int(plen) if plen else width
        except (OSError, ValueError):
            raise ValueError(f"not an address or prefix: {entry!r}") from None
        if not 0 <= length <= width:
            raise ValueError(f"prefix length out of range: {entry!r}")
        if length == width:
            hosts.add(value)
        else:
            nets.add((value >> (width - length) << (width - length) if length else 0, length))
    return gt.AddressSet(frozenset(v4h), frozenset(v4n), frozenset(v6h), frozenset(v6n))


_PTON4 = functools.partial(socket.inet_pton, socket.AF_INET)


def v4_hosts_fast(entries: list[str]) -> frozenset[int] | None:
    """The common big list, plain IPv4 hosts, parsed in C-level loops (map, join, array);
    None when any entry is something else, for the general path to handle."""
    try:
        packed = b"".join(map(_PTON4, entries))
    except (OSError, TypeError):
        return None
    values = array.array("I")
    values.frombytes(packed)
    if sys.byteorder == "little":
        values.byteswap()
    return frozenset(values)


def merge(*parts: gt.AddressSet) -> gt.AddressSet:
    if len(parts) == 1:
        return parts[0]
    return gt.AddressSet(*(frozenset().union(*(getattr(p, f) for p in parts))
                           for f in ("v4_hosts", "v4_nets", "v6_hosts", "v6_nets")))


def action_of(rule: XdpRule, profiles: tuple[RateProfile, ...]) -> gt.Action:
    if rule.action != "limit":
        return gt.Action(rule.action)
    return gt.Action("limit", tuple(
        gt.Limit(key=p.key, prefix_v4=p.v4_prefix, prefix_v6=p.v6_prefix,
                 per_byte=p.unit == "bytes", rate=p.rate, burst=p.burst, block_ns=p.block_s * NS)
        for p in (profiles[i] for i in rule.rate_profiles)))


FRAGMENT = {"any": None, "yes": frozenset({1, 2}), "no": frozenset({0})}


def rule_of(rule: XdpRule, profiles: tuple[RateProfile, ...]) -> gt.Rule:
    return gt.Rule(
        action=action_of(rule, profiles), src=rule.src, dst=rule.dst,
        proto=None if rule.proto is None else frozenset(rule.proto),
        flags=rule.tcp_flags,
        icmp=None if rule.icmp_type is None else frozenset(rule.icmp_type),
        ttl=None if rule.ttl is None else (rule.ttl,),
        frag=FRAGMENT[rule.fragment],
        sport=rule.sport, dport=rule.dport,
        length=None if rule.length is None else (rule.length,),
    )


def spec_from_plan(plan: Plan, lists: Mapping[str, Iterable[str] | gt.AddressSet] | None = None
                   ) -> gt.GuardSpec:
    """The guard spec enforcing `plan`, with hub lists' contents (a missing list is empty).

    Raises ValueError for a list entry that is not an address or prefix.
    """
    x = plan.xdp
    parsed: dict[str, gt.AddressSet] = {}
    for name, entries in (lists or {}).items():
        parsed[name] = entries if isinstance(entries, gt.AddressSet) else split_entries(entries)
    sets = {}
    for s in x.sets:
        inline = split_entries((*s.v4_hosts, *s.v4_prefixes, *s.v6_hosts, *s.v6_prefixes))
        sets[s.id] = merge(inline, *(parsed[n] for n in s.lists if n in parsed))
    verdict = {"pass": gt.PASS, "drop": gt.DROP}
    return gt.GuardSpec(
        rules=tuple(rule_of(r, x.rate_profiles) for r in x.rules),
        default=verdict[x.default], malformed=verdict[x.malformed],
        monitor=x.mode == "monitor", sets=sets)


def apply_plan(guard, plan: Plan, lists: Mapping[str, Iterable[str] | gt.AddressSet] | None = None,
               *, content_id: object | None = None) -> gt.GuardSpec:
    """Make an attached guard's maps enforce `plan` (with its lists), atomically and with
    the fewest kernel operations (see Guard.apply). Returns the spec it applied.

    Raises ValueError for a bad list entry and GuardSpecError for a Plan the guard cannot
    hold; in both cases the guard keeps enforcing what it had.
    """
    spec = spec_from_plan(plan, lists)
    guard.apply(spec, content_id=content_id)
    return spec

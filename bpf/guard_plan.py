"""From a compiled Plan (rules_dsl) to the guard's spec: the one place that reads
the Plan's XDP part for the data plane. Pure: no kernel.

Hub-managed lists arrive separately (`lists`: list name -> entries, best in the packed
form the hub sends); a set's contents are its inline entries plus those of every list
it names. A set that is one packed list alone keeps its host keys as bytes, so a
million-entry list reaches the kernel without a Python object per entry.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from bpf import guard_tables as gt
from rules_dsl.addresses import Packed
from rules_dsl.plan import Plan, RateProfile, XdpRule

NS = 1_000_000_000


def split_entries(entries: Iterable[str] | Packed) -> gt.AddressSet | gt.PackedSet:
    """Addresses and prefixes split into the four kernel tables: a list already in the
    packed form stays packed (its host keys load from the buffer), text goes through
    the one codec (rules_dsl.addresses).

    Raises ValueError (AddressError) naming the first entry that is not an address or prefix.
    """
    return gt.PackedSet(entries if isinstance(entries, Packed) else Packed(entries))


def merge(*parts: gt.AddressSet | gt.PackedSet) -> gt.AddressSet | gt.PackedSet:
    parts = tuple(p for p in parts if any(p.host_count(f) for f in ("v4", "v6")) or p.v4_nets or p.v6_nets) \
        or parts[:1]
    if len(parts) == 1:
        return parts[0]
    if all(isinstance(p, gt.PackedSet) for p in parts):  # e.g. inline prefixes and a big list
        return gt.PackedSet(parts[0].packed.union(*(p.packed for p in parts[1:])))
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
    parsed: dict[str, gt.AddressSet | gt.PackedSet] = {}
    for name, entries in (lists or {}).items():
        parsed[name] = entries if isinstance(entries, (gt.AddressSet, gt.PackedSet)) else split_entries(entries)
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

"""Hypothesis strategies for Plans and frames that exercise the guard.

Addresses come from small pools so that generated packets hit generated sets often;
frames are built valid, then sometimes tagged, truncated or corrupted.
"""
from __future__ import annotations

import dataclasses
import ipaddress

from hypothesis import strategies as st

from rules_dsl.packet import Packet, build_frame, min_length
from rules_dsl.plan import AddrSet, Plan, RateProfile, XdpPlan, XdpRule

V4_POOL = [ipaddress.IPv4Address(f"192.0.2.{i}") for i in (0, 1, 2, 7, 8, 64, 200, 255)] + [
    ipaddress.IPv4Address(f"198.51.100.{i}") for i in (1, 9, 130)]
V6_POOL = [ipaddress.IPv6Address(f"2001:db8::{i:x}") for i in (0, 1, 2, 0x80, 0xff)] + [
    ipaddress.IPv6Address("2001:db8:1::5")]
PORTS = [0, 22, 53, 80, 123, 443, 1024, 40000, 65535]
PROTOS = [1, 6, 17, 47, 58]


def network_of(addr, plen):
    return ipaddress.ip_network(f"{addr}/{plen}", strict=False)


@st.composite
def addr_sets(draw, count):
    sets = []
    for i in range(count):
        hosts4 = draw(st.sets(st.sampled_from(V4_POOL), max_size=3))
        hosts6 = draw(st.sets(st.sampled_from(V6_POOL), max_size=2))
        nets4 = draw(st.sets(st.builds(network_of, st.sampled_from(V4_POOL), st.integers(8, 31)), max_size=3))
        nets6 = draw(st.sets(st.builds(network_of, st.sampled_from(V6_POOL), st.integers(32, 127)), max_size=2))
        lists = tuple(sorted(draw(st.sets(st.sampled_from(["deny", "allow"]), max_size=1))))
        sets.append(AddrSet(
            i, f"s{i}", tuple(str(a) for a in sorted(hosts4)), tuple(str(n) for n in sorted(nets4)),
            tuple(str(a) for a in sorted(hosts6)), tuple(str(n) for n in sorted(nets6)), lists))
    return tuple(sets)


ranges = st.lists(st.tuples(st.sampled_from(PORTS), st.sampled_from(PORTS)).map(
    lambda t: (min(t), max(t))), min_size=1, max_size=3).map(tuple)


@st.composite
def rules(draw, nsets, nprofiles):
    action = draw(st.sampled_from(["pass", "drop", "limit"] if nprofiles else ["pass", "drop"]))
    maybe = lambda s: draw(st.one_of(st.none(), s))  # noqa: E731
    length = maybe(st.tuples(st.integers(20, 120), st.integers(20, 200)).map(lambda t: (min(t), max(t))))
    ttl = maybe(st.tuples(st.integers(0, 255), st.integers(0, 255)).map(lambda t: (min(t), max(t))))
    return XdpRule(
        action=action,
        src=maybe(st.integers(0, nsets - 1)) if nsets else None,
        dst=maybe(st.integers(0, nsets - 1)) if nsets else None,
        proto=maybe(st.lists(st.sampled_from(PROTOS), min_size=1, max_size=2, unique=True).map(tuple)),
        sport=maybe(ranges), dport=maybe(ranges),
        tcp_flags=maybe(st.lists(st.tuples(st.sampled_from([0x02, 0x12, 0x03, 0x3f, 0x29]),
                                           st.sampled_from([0x00, 0x02, 0x12, 0x03, 0x29])).map(
            lambda t: (t[0], t[1] & t[0])), min_size=1, max_size=2).map(tuple)),
        length=length,
        fragment=draw(st.sampled_from(["any", "any", "yes", "no"])),
        icmp_type=maybe(st.lists(st.sampled_from([0, 3, 8, 128, 135]), min_size=1, max_size=2,
                                 unique=True).map(tuple)),
        ttl=ttl,
        rate_profiles=tuple(draw(st.lists(st.integers(0, nprofiles - 1), min_size=1, max_size=3))) if action == "limit" else (),
    )


profiles = st.builds(
    lambda i, unit, rate, burst, key, p4, p6, block: RateProfile(i, unit, rate, burst, key, p4, p6, block),
    st.just(0), st.sampled_from(["packets", "bytes"]), st.sampled_from([1, 10, 1000]),
    st.sampled_from([1, 2, 3, 200]), st.sampled_from(["src", "dst", "global"]),
    st.sampled_from([32, 24, 0]), st.sampled_from([128, 64]), st.sampled_from([0, 0, 2]))


@st.composite
def plans(draw, max_rules=8):
    nsets = draw(st.integers(0, 4))
    sets = draw(addr_sets(nsets))
    nprofiles = draw(st.integers(0, 3))
    profs = tuple(_renumber(draw(profiles), i) for i in range(nprofiles))
    rule_list = tuple(draw(st.lists(rules(nsets, nprofiles), max_size=max_rules)))
    xdp = XdpPlan(mode=draw(st.sampled_from(["enforce", "enforce", "monitor"])),
                  default=draw(st.sampled_from(["pass", "drop"])),
                  malformed=draw(st.sampled_from(["pass", "drop"])),
                  sets=sets, rate_profiles=profs, rules=rule_list)
    return Plan("generated", xdp)


# small bursts and rates, so that a few packets reach every limit's edge
tight_profiles = st.builds(
    lambda unit, rate, burst, key, p4, block: RateProfile(
        0, unit, rate * (1500 if unit == "bytes" else 1), burst * (1500 if unit == "bytes" else 1),
        key, p4, 128, block),
    st.sampled_from(["packets"] * 3 + ["bytes"]), st.sampled_from([1, 1, 10]),
    st.sampled_from([1, 2, 3]), st.sampled_from(["src", "dst", "global", "global"]),
    st.sampled_from([32, 24]), st.sampled_from([0, 0, 2]))


@st.composite
def limited_plans(draw):
    """Plans whose packets mostly meet stacked limits: few rules, few matchers (random
    rules seldom match a random packet, so `plans` rarely reaches a limit)."""
    nprofiles = draw(st.integers(2, 4))
    profs = tuple(_renumber(draw(tight_profiles), i) for i in range(nprofiles))
    rule_list = []
    for _ in range(draw(st.integers(1, 2))):
        ids = draw(st.lists(st.integers(0, nprofiles - 1), min_size=2, max_size=4))
        if draw(st.booleans()):   # the usual stack: per-key limits first, then global ones
            ids.sort(key=lambda i: profs[i].key == "global")
        rule_list.append(XdpRule(action="limit",
                                 proto=draw(st.sampled_from([None, None, (17,), (6, 17)])),
                                 rate_profiles=tuple(ids)))
    xdp = XdpPlan(mode=draw(st.sampled_from(["enforce", "monitor"])), default="pass",
                  malformed="drop", rate_profiles=profs, rules=tuple(rule_list))
    return Plan("limited", xdp)


@st.composite
def valid_frames(draw):
    """Valid packets from two sources per family, so that per-key buckets are shared."""
    p = draw(packets())
    pool = V4_POOL if p.l3 == "ipv4" else V6_POOL
    return build_frame(dataclasses.replace(p, src=draw(st.sampled_from(pool[1:3])),
                                           length=min_length(p) + draw(st.sampled_from([0, 100, 1400]))))


def _renumber(profile: RateProfile, i: int) -> RateProfile:
    return RateProfile(i, profile.unit, profile.rate, profile.burst, profile.key,
                       profile.v4_prefix, profile.v6_prefix, profile.block_s)


list_contents = st.fixed_dictionaries({
    "deny": st.sets(st.sampled_from([str(a) for a in V4_POOL[:4]] + ["198.51.100.0/24", "2001:db8::2"]), max_size=3),
    "allow": st.sets(st.sampled_from([str(a) for a in V4_POOL[4:]] + ["2001:db8::/64"]), max_size=2),
}).map(lambda d: {k: sorted(v) for k, v in d.items()})


@st.composite
def packets(draw):
    l3 = draw(st.sampled_from(["ipv4", "ipv6"]))
    pool = V4_POOL if l3 == "ipv4" else V6_POOL
    proto = draw(st.sampled_from(PROTOS))
    frag = draw(st.sampled_from(["none", "none", "none", "first", "later"]))
    later = frag == "later"
    icmp = 1 if l3 == "ipv4" else 58
    p = Packet(
        l3=l3, src=draw(st.sampled_from(pool)), dst=draw(st.sampled_from(pool)), proto=proto,
        sport=draw(st.sampled_from(PORTS)) if proto in (6, 17) and not later else None,
        dport=draw(st.sampled_from(PORTS)) if proto in (6, 17) and not later else None,
        tcp_flags=draw(st.integers(0, 255)) if proto == 6 and not later else None,
        icmp_type=draw(st.sampled_from([0, 3, 8, 128, 135])) if proto == icmp and not later else None,
        ttl=draw(st.sampled_from([0, 1, 64, 255])),
        is_fragment=frag != "none", is_first_fragment=frag == "first",
    )
    return p


@st.composite
def frames(draw):
    """A frame: mostly valid packets, some tagged, truncated, corrupted or not IP."""
    kind = draw(st.sampled_from(["valid"] * 6 + ["vlan", "truncated", "corrupt", "arp", "three_tags"]))
    if kind == "arp":
        return build_frame(Packet())
    p = draw(packets())
    extra = draw(st.sampled_from([0, 0, 1, 30, 150]))
    p = dataclasses.replace(p, length=min_length(p) + extra)
    frame = build_frame(p)
    if kind == "vlan":
        frame = build_frame(p, vlans=draw(st.sampled_from([(5,), (5, 6)])),
                            vlan_tpid=draw(st.sampled_from([0x8100, 0x88A8])))
    elif kind == "three_tags":
        frame = build_frame(p, vlans=(1, 2, 3))
    elif kind == "truncated":
        frame = frame[:max(14, draw(st.integers(14, max(14, len(frame) - 1))))]
    elif kind == "corrupt":
        at = draw(st.integers(14, len(frame) - 1))
        frame = frame[:at] + bytes([draw(st.integers(0, 255))]) + frame[at + 1:]
    return frame

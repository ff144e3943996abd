"""Policy nodes → resolved rules: names looked up, numbers checked, sets expanded.

This is the first half of the checker: everything that turns what the author wrote into
what the data plane means, reporting each fault at its token. `check.py` then looks at the
resolved rules as a whole (shadowing, lockout, limits) and `compiler.py` builds the Plan.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from . import nodes as n
from .diagnostics import Reporter
from .packet import Packet
from .plan import MAX_BLOCK_S, U32
from .vocab import (FLAG_COMBOS, ICMP_TYPES, ICMPV6_TYPES, PORT_NAMES, PORT_PROTOCOLS, PROTOCOLS,
                    RATE_UNITS, TCP_FLAGS, suggest)

Net = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_LEN = 65535
MAX_TTL = 255


@dataclass(frozen=True)
class RAddrSet:
    """A resolved address set. `key` identifies it (its name, or its content if inline)."""
    key: str
    nets: tuple[Net, ...]
    lists: tuple[str, ...] = ()
    name: str | None = None

    @property
    def families(self) -> frozenset[int]:
        if self.lists:
            return frozenset({4, 6})
        return frozenset(x.version for x in self.nets)

    @property
    def empty(self) -> bool:
        return not self.nets and not self.lists


@dataclass(frozen=True)
class RProfile:
    unit: str
    rate: int
    burst: int
    key: str
    v4_prefix: int
    v6_prefix: int
    block_s: int


@dataclass(frozen=True)
class RRule:
    """A stateless rule as the data plane sees it (address sets still by object)."""
    action: str
    src: RAddrSet | None = None
    dst: RAddrSet | None = None
    proto: frozenset[int] | None = None
    sport: tuple[tuple[int, int], ...] | None = None
    dport: tuple[tuple[int, int], ...] | None = None
    tcp_flags: tuple[tuple[int, int], ...] | None = None
    length: tuple[int, int] | None = None
    fragment: str = "any"
    icmp_type: frozenset[int] | None = None
    ttl: tuple[int, int] | None = None
    profiles: tuple[RProfile, ...] = ()   # stacked limits, in written order
    node: n.Rule | None = field(default=None, compare=False)


@dataclass(frozen=True)
class RStateful:
    action: str                       # pass | drop | synproxy
    src: tuple[Net, ...] | None
    dst: tuple[Net, ...] | None
    proto: frozenset[int] | None
    sport: tuple[tuple[int, int], ...] | None
    dport: tuple[tuple[int, int], ...] | None
    ct_state: tuple[str, ...] | None
    rate: tuple[int, str, int] | None     # (rate, per, burst)
    connections: int | None
    synproxy: tuple[int | None, int | None, bool, bool] | None
    node: n.StatefulRule = field(compare=False)


@dataclass(frozen=True)
class RExpect:
    verdict: str
    packet: Packet
    repeat: int
    at_ns: int | None
    node: n.Expect = field(compare=False)


@dataclass
class Resolved:
    name: str
    default: str
    mode: str
    malformed: str
    lockout_guard: bool
    rules: list[RRule]
    stateful: list[RStateful]
    expects: list[RExpect]
    test_lists: dict[str, tuple[Net, ...]]
    set_kinds: dict[str, str]
    used_sets: set[str]


def parse_net(text: str, rep: Reporter | None, pos) -> Net | None:
    """An address or prefix; host bits set are an error with the corrected prefix."""
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(text, strict=False)
    except ValueError:
        if rep:
            rep.error(pos, f"'{text}' is not an IPv4 or IPv6 address or prefix")
        return None
    if rep:
        rep.error(pos, f"'{text}' has host bits set", f"did you mean '{loose}'?")
    return None


class Resolver:
    def __init__(self, policy: n.Policy, rep: Reporter):
        self.p = policy
        self.rep = rep
        self.addr_sets: dict[str, RAddrSet] = {}
        self.port_sets: dict[str, tuple[tuple[int, int], ...]] = {}
        self.set_kinds: dict[str, str] = {}
        self.set_pos: dict[str, n.Pos] = {}
        self.used: set[str] = set()

    # ---- sets
    def sets(self) -> None:
        for decl in self.p.sets:
            if decl.name in self.set_kinds:
                self.rep.error(decl.pos, f"set '{decl.name}' is declared twice",
                               f"the first is on line {self.set_pos[decl.name].line}")
                continue
            addrs = [i for i in decl.items if isinstance(i, (n.Addr, n.ListRef))]
            ports = [i for i in decl.items if isinstance(i, (n.PortRange, n.PortName))]
            if addrs and ports:
                self.rep.error(ports[0].pos, f"set '{decl.name}' mixes addresses and ports",
                               "make one set of addresses and one of ports")
            self.set_pos[decl.name] = decl.pos
            if ports:
                self.set_kinds[decl.name] = "port"
                self.port_sets[decl.name] = self.port_values(ports)
            else:
                self.set_kinds[decl.name] = "address"
                nets = []
                for i in addrs:
                    if isinstance(i, n.Addr):
                        net = parse_net(i.text, self.rep, i.pos)
                        if net is not None:
                            nets.append(net)
                lists = tuple(sorted({i.name for i in addrs if isinstance(i, n.ListRef)}))
                for i in addrs:
                    if isinstance(i, n.ListRef) and not i.name.strip():
                        self.rep.error(i.pos, "a list needs a name")
                self.addr_sets[decl.name] = RAddrSet(decl.name, _norm_nets(nets), lists,
                                                     decl.name)
            if not decl.items:
                self.rep.warning(decl.pos, f"set '{decl.name}' is empty: rules using it never match")

    def port_values(self, items) -> tuple[tuple[int, int], ...]:
        out = []
        for i in items:
            if isinstance(i, n.PortName):
                if i.name in PORT_NAMES:
                    out.append((PORT_NAMES[i.name],) * 2)
            elif isinstance(i, n.PortRange):
                bad = [v for v in (i.lo, i.hi) if v > 65535]
                if bad:
                    self.rep.error(i.pos, f"port {bad[0]} is out of range", "ports are 0..65535")
                elif i.lo > i.hi:
                    self.rep.error(i.pos, f"the range {i.lo}-{i.hi} is backwards",
                                   f"did you mean {i.hi}-{i.lo}?")
                else:
                    out.append((i.lo, i.hi))
            elif isinstance(i, n.SetRef):
                ref = self.ref(i, "port")
                if ref is not None:
                    out.extend(self.port_sets[ref])
        return merge_ranges(out)

    def ref(self, r: n.SetRef, kind: str) -> str | None:
        self.used.add(r.name)
        have = self.set_kinds.get(r.name)
        if have is None:
            better = suggest(r.name, [k for k, v in self.set_kinds.items() if v == kind],
                             synonyms=False)
            self.rep.error(r.pos, f"unknown set '@{r.name}'",
                           f"did you mean '@{better}'?" if better else
                           f"declare it: set {r.name} {{ ... }}")
            return None
        if have != kind:
            self.rep.error(r.pos, f"'@{r.name}' is a set of {have}s, used here as {kind}s")
            return None
        return r.name

    def addr_expr(self, items, stateful=False) -> RAddrSet | None:
        if items is None:
            return None
        if len(items) == 1 and isinstance(items[0], n.SetRef):
            name = self.ref(items[0], "address")
            if name is None:
                return None
            s = self.addr_sets[name]
        else:
            nets, lists = [], set()
            for i in items:
                if isinstance(i, n.Addr):
                    net = parse_net(i.text, self.rep, i.pos)
                    if net is not None:
                        nets.append(net)
                else:
                    name = self.ref(i, "address")
                    if name is not None:
                        nets.extend(self.addr_sets[name].nets)
                        lists.update(self.addr_sets[name].lists)
            nets = _norm_nets(nets)
            lists = tuple(sorted(lists))
            key = "{" + ",".join([str(x) for x in nets] + [f"list:{x}" for x in lists]) + "}"
            s = RAddrSet(key, nets, lists)
        if stateful and s.lists:
            self.rep.error(items[0].pos, "hub-managed lists can only be used in stateless rules",
                           "match the list in a stateless rule above the stateful block")
        return s

    # ---- protocol-dependent fields
    def proto(self, items) -> frozenset[int] | None:
        if items is None:
            return None
        out = set()
        for i in items:
            if isinstance(i.value, int):
                self.byte(i, "protocol", out)
            elif i.value in PROTOCOLS:
                out.add(PROTOCOLS[i.value])
            else:
                better = suggest(i.value, PROTOCOLS)
                self.rep.error(i.pos, f"unknown protocol '{i.value}'",
                               f"did you mean '{better}'?" if better else "or give its number")
        return frozenset(out)

    def byte(self, item, what: str, out: set[int]) -> None:
        """A field given by number (protocol, ICMP type): one octet on the wire."""
        if item.value > 255:
            self.rep.error(item.pos, f"{what} {item.value} is out of range", "0..255")
        else:
            out.add(item.value)

    def needs(self, proto, allowed: set[int], pos, what: str, want: str) -> None:
        if proto is None or not proto or not proto <= allowed:
            self.rep.error(pos, f"'{what}' needs the protocol to be {want}",
                           f"add '{want.split(' or ')[0]}' before '{what}'")

    def flags(self, items, pos) -> tuple[tuple[int, int], ...] | None:
        if items is None:
            return None
        out = []
        for c in items:
            if len(c.value) == 1 and c.value[0] in FLAG_COMBOS and c.mask is None:
                out.append(FLAG_COMBOS[c.value[0]])
                continue
            names = c.value + (c.mask or ())
            if any(x in FLAG_COMBOS for x in names):
                self.rep.error(c.pos, "'null' and 'xmas' stand alone",
                               "write them as their own item: flags { null, xmas }")
                continue
            value = _bits(c.value)
            mask = _bits(c.mask) if c.mask is not None else value
            if c.mask is None and value == 0:
                self.rep.error(c.pos, "'none' needs a mask", "e.g. flags none/syn|ack")
                continue
            if value & ~mask:
                extra = [k for k, b in TCP_FLAGS.items() if b & value & ~mask]
                self.rep.error(c.pos, f"'{extra[0]}' is in the value but not in the mask",
                               f"add it to the mask: {'|'.join(c.value)}/"
                               f"{'|'.join((c.mask or ()) + (extra[0],))}")
                continue
            out.append((mask, value))
        return tuple(sorted(set(out)))

    def cmp(self, c: n.Cmp | None, hi: int, what: str) -> tuple[int, int] | None:
        if c is None:
            return None
        a, b = c.a, c.b
        lo, top = {"=": (a, a), "-": (a, b if b is not None else a), "<": (0, a - 1),
                   "<=": (0, a), ">": (a + 1, hi), ">=": (a, hi)}[c.op]
        if max(a, b or 0) > hi:
            self.rep.error(c.pos, f"{what} {max(a, b or 0)} is out of range", f"{what} is 0..{hi}")
            return None
        if lo > top:
            self.rep.error(c.pos, f"this {what} condition can never hold",
                           f"did you mean {b}-{a}?" if c.op == "-" else None)
            return None
        if (lo, min(top, hi)) == (0, hi):
            return None   # the whole domain: the same as not saying
        return (lo, min(top, hi))

    def icmp(self, items, proto, pos) -> frozenset[int] | None:
        if items is None:
            return None
        out = set()
        for i in items:
            if isinstance(i.value, int):
                self.byte(i, "ICMP type", out)
                continue
            tables = [t for p, t in ((1, ICMP_TYPES), (58, ICMPV6_TYPES)) if proto and p in proto]
            if len(tables) != 1:
                self.rep.error(i.pos, f"'{i.value}' has a different number in ICMP and ICMPv6",
                               "say 'icmp' or 'icmpv6' alone, or use type numbers")
                continue
            if i.value not in tables[0]:
                better = suggest(i.value, tables[0])
                self.rep.error(i.pos, f"unknown ICMP type '{i.value}'",
                               f"did you mean '{better}'?" if better else "or give its number")
                continue
            out.add(tables[0][i.value])
        return frozenset(out)

    def profile(self, lim: n.Limit) -> RProfile | None:
        ok = True
        if lim.per != "second":
            self.rep.error(lim.pos, f"the data plane limits per second, not per {lim.per}",
                           "write the rate per second; stateful rules take /minute")
            ok = False
        base, mult = RATE_UNITS[lim.unit] if lim.unit in RATE_UNITS else ("packets", 1)
        rate = lim.rate * mult
        if lim.rate == 0:
            self.rep.error(lim.pos, "a rate of zero lets nothing through", "use 'drop' instead")
            ok = False
        if lim.burst is not None:
            bunit = lim.burst_unit or ("packets" if base == "packets" else "bytes")
            bbase, bmult = RATE_UNITS.get(bunit, ("packets", 1))
            if bbase != base:
                self.rep.error(lim.pos, f"the burst is in {bbase} but the rate in {base}")
                ok = False
            burst = lim.burst * bmult
            if lim.burst == 0:
                self.rep.error(lim.pos, "a burst of zero lets nothing through",
                               "give a burst of at least one packet")
                ok = False
        else:
            burst = rate
        if rate > U32 or burst > U32:
            self.rep.error(lim.pos, "the rate or burst is too large for the data plane",
                           f"at most {U32} {base} (per second)")
            ok = False
        if base == "bytes" and 0 < burst < 1514:
            self.rep.warning(lim.pos, f"a burst of {burst} bytes drops every full-size packet",
                             "give a burst of at least 1514 bytes")
        key = lim.key or n.Key("src")
        v4 = key.v4 if key.v4 is not None else 32
        v6 = key.v6 if key.v6 is not None else 128
        if v4 > 32 or v6 > 128:
            self.rep.error(key.pos, "a key prefix length is out of range", "ipv4/0..32, ipv6/0..128")
            ok = False
        if key.kind == "global" and (key.v4 is not None or key.v6 is not None):
            ok = False  # pragma: no cover - the grammar gives no lengths to 'global'
        block = lim.block_s or 0
        if block > MAX_BLOCK_S:
            self.rep.error(lim.pos, "a block lasts at most 366 days")
            ok = False
        if not ok:
            return None
        if key.kind == "global":
            v4, v6 = 0, 0
        return RProfile(base, rate, burst, key.kind, v4, v6, block)

    # ---- rules
    def rule(self, r: n.Rule) -> RRule | None:
        errors_before = len([d for d in self.rep.items if d.severity == "error"])
        src = self.addr_expr(r.src)
        dst = self.addr_expr(r.dst)
        proto = self.proto(r.proto)
        if r.sport is not None:
            self.needs(proto, PORT_PROTOCOLS, r.sport[0].pos, "sport", "tcp or udp")
        if r.dport is not None:
            self.needs(proto, PORT_PROTOCOLS, r.dport[0].pos, "dport", "tcp or udp")
        if r.flags is not None:
            self.needs(proto, {6}, r.flags[0].pos, "flags", "tcp")
        if r.icmp_type is not None:
            self.needs(proto, {1, 58}, r.icmp_type[0].pos, "type", "icmp or icmpv6")
        sport = self.port_values(r.sport) if r.sport is not None else None
        dport = self.port_values(r.dport) if r.dport is not None else None
        flags = self.flags(r.flags, r.pos)
        length = self.cmp(r.length, MAX_LEN, "length")
        ttl = self.cmp(r.ttl, MAX_TTL, "ttl")
        icmp = self.icmp(r.icmp_type, proto, r.pos)
        fams = {4, 6}
        for s in (src, dst):
            if s is not None and not s.empty:
                fams &= s.families
        if proto == frozenset({1}):
            fams &= {4}
        elif proto == frozenset({58}):
            fams &= {6}
        if not fams:
            self.rep.error(r.pos, "IPv4 and IPv6 are mixed: this rule can never match",
                           "split it into one rule per family")
        profiles = tuple(self.profile(lim) for lim in r.limits)
        if r.limits and r.action.value == "drop":
            self.rep.error(r.limits[0].pos, "'drop' takes no limit",
                           "a limited rule passes within the rate: write 'pass ... limit'")
        errors_after = len([d for d in self.rep.items if d.severity == "error"])
        if errors_after > errors_before:
            return None
        action = "limit" if profiles else r.action.value
        return RRule(action, src, dst, proto, sport, dport, flags, length,
                     r.fragment.value if r.fragment else "any", icmp, ttl, profiles, node=r)

    def stateful(self, r: n.StatefulRule) -> RStateful | None:
        before = self.rep.has_errors
        count = len(self.rep.items)
        src = self.addr_expr(r.src, stateful=True)
        dst = self.addr_expr(r.dst, stateful=True)
        proto = self.proto(r.proto)
        if r.sport is not None:
            self.needs(proto, PORT_PROTOCOLS, r.sport[0].pos, "sport", "tcp or udp")
        if r.dport is not None:
            self.needs(proto, PORT_PROTOCOLS, r.dport[0].pos, "dport", "tcp or udp")
        sport = self.port_values(r.sport) if r.sport is not None else None
        dport = self.port_values(r.dport) if r.dport is not None else None
        act = r.action.value
        if (r.rate or r.connections is not None) and act != "drop":
            self.rep.error(r.pos, "'rate over' and 'connections over' go with 'drop'",
                           "write: drop ... rate over 10/minute per src")
        if r.rate is not None and (r.rate.rate == 0 or r.rate.burst == 0):
            self.rep.error(r.rate.pos, "a rate of zero lets nothing through", "use 'drop' instead")
        if r.connections == 0:
            self.rep.error(r.pos, "a connection count of zero lets nothing through",
                           "use 'drop' instead")
        if r.rate is not None and r.connections is not None:
            self.rep.error(r.pos, "one rule takes 'rate over' or 'connections over', not both")
        syn = None
        if act == "synproxy":
            if proto != frozenset({6}) or dport is None:
                self.rep.error(r.pos, "synproxy needs 'tcp' and a 'dport'",
                               "e.g. synproxy tcp dport 443")
            if r.mss is not None and not 536 <= r.mss <= 65535:
                self.rep.error(r.pos, "mss is 536..65535")
            if r.wscale is not None and r.wscale > 14:
                self.rep.error(r.pos, "wscale is 0..14")
            syn = (r.mss, r.wscale, r.timestamp, r.sack_perm)
        elif r.mss is not None or r.wscale is not None or r.timestamp or r.sack_perm:
            self.rep.error(r.pos, "mss, wscale, timestamp and sack-perm belong to synproxy")
        fams = {4, 6}
        for s in (src, dst):
            if s is not None and not s.empty:
                fams &= s.families
        if not fams:
            self.rep.error(r.pos, "IPv4 and IPv6 are mixed: this rule can never match",
                           "split it into one rule per family")
        if self.rep.has_errors and (not before or len(self.rep.items) > count):
            if any(d.severity == "error" for d in self.rep.items[count:]):
                return None
        rate = (r.rate.rate, r.rate.per, r.rate.burst or r.rate.rate) if r.rate else None
        return RStateful(act, src.nets if src else None, dst.nets if dst else None, proto,
                         sport, dport, tuple(w.value for w in r.ct_state) if r.ct_state else None,
                         rate, r.connections, syn, node=r)

    def expect(self, e: n.Expect, prev_at: int | None) -> RExpect | None:
        from .packet import packet_from_spec
        count = len(self.rep.items)
        packet = packet_from_spec(e.packet, self.rep)
        if e.repeat is not None and not 1 <= e.repeat <= 100_000:
            self.rep.error(e.pos, "'x' repeats a packet 1..100000 times")
        at_ns = e.at_ms * 1_000_000 if e.at_ms is not None else None
        if at_ns is not None and prev_at is not None and at_ns < prev_at:
            self.rep.error(e.pos, "time only moves forward in expect lines",
                           f"use 'at' {prev_at // 1_000_000}ms or later")
        if packet is None or any(d.severity == "error" for d in self.rep.items[count:]):
            return None
        return RExpect(e.verdict.value, packet, e.repeat or 1, at_ns, node=e)


def resolve(policy: n.Policy, rep: Reporter) -> Resolved:
    res = Resolver(policy, rep)
    if policy.name is None:
        rep.error(n.Pos(1, 1, 1, 2), "the policy has no name", 'start the file with: policy "NAME"')
    if policy.default is None:
        rep.error(n.Pos(1, 1, 1, 2), "the policy has no default verdict",
                  "add 'default drop' (only what rules pass gets in) or 'default pass'")
    res.sets()
    rules = [r for r in (res.rule(x) for x in policy.rules)]
    stateful = [r for r in (res.stateful(x) for x in policy.stateful) if r is not None]
    test_lists: dict[str, tuple[Net, ...]] = {}
    for t in policy.test_lists:
        nets = [parse_net(a.text, rep, a.pos) for a in t.items]
        test_lists[t.name] = _norm_nets([x for x in nets if x is not None])
    expects, prev = [], None
    for e in policy.expects:
        r = res.expect(e, prev)
        if r is not None:
            expects.append(r)
            prev = r.at_ns if r.at_ns is not None else prev
    for name, kind in res.set_kinds.items():
        if name not in res.used:
            rep.warning(res.set_pos[name], f"set '{name}' is never used")
    return Resolved(
        name=policy.name.value if policy.name else "",
        default=policy.default.value if policy.default else "drop",
        mode=policy.mode.value if policy.mode else "enforce",
        malformed=policy.malformed.value if policy.malformed else "drop",
        lockout_guard=not (policy.lockout_guard and policy.lockout_guard.value == "off"),
        rules=[r for r in rules if r is not None], stateful=stateful, expects=expects,
        test_lists=test_lists, set_kinds=res.set_kinds, used_sets=res.used)


def _bits(names) -> int:
    v = 0
    for x in names or ():
        v |= TCP_FLAGS.get(x, 0)
    return v


def _norm_nets(nets) -> tuple[Net, ...]:
    """Sorted (IPv4 first), duplicates and prefixes inside others removed."""
    out = []
    for version in (4, 6):
        fam = [x for x in nets if x.version == version]
        out.extend(ipaddress.collapse_addresses(fam) if fam else ())
    return tuple(sorted(out, key=lambda x: (x.version, x)))


def merge_ranges(ranges) -> tuple[tuple[int, int], ...]:
    out: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((a, b) for a, b in out)

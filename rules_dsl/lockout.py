"""The lockout guard: would a Plan drop the hub's replies or SSH from the admin prefixes?

    judge_lockout(plan, management, lists) -> (Finding, ...)

One judge for both stages, used by the checker (lists unknown: empty), the hub at save
(through the checker) and at deploy and rollback (on the very Plan JSON it sends), and
the agent on every hub Plan (with its live management values and lists).

Probes, not proofs: each management flow (the hub's SYN-ACK, ACK and PSH-ACK replies;
SSH SYN, ACK and PSH-ACK from each admin prefix) is sent as concrete packets. A base
packet, then variants that move one field at a time to the edges of every range the
Plan's rules name (lengths, TTLs, ports) and just inside and outside every literal
prefix, so `drop tcp length > 1000`, or a pass for half an admin prefix before a drop,
is found. At most MAX_VARIANTS values per field: a policy naming more edges is probed at
an even spread of them, so the work stays bounded. The XDP stage is asked through the
reference evaluator; the nftables stage through `_nft_verdicts`, which reads the
vocabulary `nft_allow` admits (the agent and hub refuse anything else before judging).

Lists are never iterated: `lists[name]` is anything where `address in contents` (an
ipaddress address) says whether a host or prefix entry covers it, asked a few times per
probe address, so a 1,000,000-entry list costs a few lookups.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .evaluate import AddressIndex, evaluate
from .packet import Packet
from .plan import Plan

SYN, ACK, PSH = 0x02, 0x10, 0x08
EPHEMERAL = 40000
BASE_LENGTH, BASE_TTL = 60, 64
MAX_VARIANTS = 24   # per field and flow: a 1,000-rule policy stays under a second or so
_DST = {4: ipaddress.ip_address("192.0.2.1"), 6: ipaddress.ip_address("2001:db8::1")}


@dataclass(frozen=True)
class Finding:
    """One way the Plan stands in the way of management traffic.

    stage: "xdp" | "nft"; kind: "drop" (would lock out) | "limit" (rate-limits it);
    rule: index into plan.xdp.rules, or into the nft document's rules; None = the default
    verdict (xdp) or a base chain's policy (nft); text: that rule in source form."""
    stage: str
    kind: str
    rule: int | None
    what: str
    text: str = ""

    def render(self) -> str:
        where = ("the default verdict" if self.stage == "xdp" else "the chain policy") \
            if self.rule is None else f"{self.stage} rule {self.rule}" + (
                f" ({self.text})" if self.text else "")
        verb = "would drop" if self.kind == "drop" else "rate-limits"
        return f"{where} {verb} {self.what}"


@dataclass(frozen=True)
class _Flow:
    what: str
    src: ipaddress.IPv4Network | ipaddress.IPv6Network
    sport: tuple[int, int]
    dport: tuple[int, int]
    flags: int
    ct: str                    # the conntrack state nftables sees: new | established


def _flows(m) -> list[_Flow]:
    out = []
    if m.hub_address is not None:
        net = ipaddress.ip_network(m.hub_address)
        for flags in (SYN | ACK, ACK, PSH | ACK):
            out.append(_Flow(f"the hub at {m.hub_address} port {m.hub_port}", net,
                             (m.hub_port, m.hub_port), (1024, 65535), flags, "established"))
    for prefix in m.admin_prefixes:
        for flags in (SYN, ACK, PSH | ACK):
            out.append(_Flow(f"SSH (port {m.ssh_port}) from {prefix}", prefix, (1, 65535),
                             (m.ssh_port, m.ssh_port), flags, "new" if flags == SYN else "established"))
    return out


def _rep(net) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address inside net (not the network address of a real subnet)."""
    return net.network_address + (1 if net.num_addresses > 1 else 0)


def _around(net) -> tuple:
    """An address inside net and the ones just outside it: a rule on part of a prefix."""
    inside = (_rep(net),)
    below = (net.network_address - 1,) if int(net.network_address) > 0 else ()
    top = int(net.broadcast_address) < (1 << net.max_prefixlen) - 1
    return inside + below + ((net.broadcast_address + 1,) if top else ())


@dataclass
class _Edges:
    """The values the Plan's rules turn on: range edges per field and literal prefixes."""
    length: set
    ttl: set
    sport: set
    dport: set
    src_nets: set
    dst_nets: set

    def add_ranges(self, into: set, ranges: Iterable | None) -> None:
        for lo, hi in ranges or ():
            into.update((lo - 1, lo, hi, hi + 1))


def _edges(plan: Plan, nft_rules: list) -> _Edges:
    e = _Edges(set(), set(), set(), set(), set(), set())
    sets = {s.id: s for s in plan.xdp.sets}
    for r in plan.xdp.rules:
        for sid, into in ((r.src, e.src_nets), (r.dst, e.dst_nets)):
            s = sets.get(sid)
            if s is not None:
                into.update(ipaddress.ip_network(t) for t in (
                    *s.v4_hosts, *s.v4_prefixes, *s.v6_hosts, *s.v6_prefixes))
        e.add_ranges(e.length, (r.length,) if r.length else None)
        e.add_ranges(e.ttl, (r.ttl,) if r.ttl else None)
        e.add_ranges(e.sport, r.sport)
        e.add_ranges(e.dport, r.dport)
    for rule in nft_rules:
        for left, _, rights in rule.matches:
            payload = left.get("payload") if isinstance(left, dict) else None
            fld = payload.get("field") if isinstance(payload, dict) else None
            for v in rights:
                if fld in ("sport", "dport") and isinstance(v, tuple):
                    e.add_ranges(e.sport if fld == "sport" else e.dport, (v,))
                elif fld in ("saddr", "daddr") and isinstance(v, (ipaddress.IPv4Network,
                                                                   ipaddress.IPv6Network)):
                    (e.src_nets if fld == "saddr" else e.dst_nets).add(v)
    return e


def _within(values: set, lo: int, hi: int) -> list[int]:
    return sorted(v for v in values if lo <= v <= hi)


def _probes(flow: _Flow, e: _Edges) -> list[Packet]:
    """The base packet of the flow, then one field at a time at the rules' edges."""
    v = flow.src.version
    fields = {"l3": f"ipv{v}", "src": _rep(flow.src), "dst": _DST[v], "proto": 6,
              "sport": flow.sport[0] if flow.sport[0] == flow.sport[1] else EPHEMERAL,
              "dport": flow.dport[0] if flow.dport[0] == flow.dport[1] else EPHEMERAL,
              "tcp_flags": flow.flags, "length": BASE_LENGTH, "ttl": BASE_TTL}
    base = Packet(**fields)
    out = [base]
    variants = {
        "src": {a for n in e.src_nets if n.version == v and n.overlaps(flow.src)
                for a in _around(n) if a in flow.src} | {flow.src.broadcast_address},
        "dst": {a for n in e.dst_nets if n.version == v for a in _around(n)},
        "length": _within(e.length | {40, 65535}, 40, 65535),
        "ttl": _within(e.ttl | {1, 255}, 1, 255),
        "sport": _within(e.sport | set(flow.sport), *flow.sport),
        "dport": _within(e.dport | set(flow.dport), *flow.dport),
    }
    for fld, values in variants.items():
        values = sorted((x for x in values if x != fields[fld]), key=_order)
        if len(values) > MAX_VARIANTS:   # evenly spread, edges kept: bounded work
            step = (len(values) - 1) / (MAX_VARIANTS - 1)
            values = [values[round(i * step)] for i in range(MAX_VARIANTS)]
        out += [Packet(**{**fields, fld: value}) for value in values]
    return out


def _order(value) -> tuple:
    return (0, value) if isinstance(value, int) else (value.version, int(value))


class _Lookup(AddressIndex):
    """A list as the evaluator asks it: `address in contents`, remembered; never iterated."""

    def __init__(self, contents):
        self._contents, self._memo = contents, {}

    def __contains__(self, addr) -> bool:
        hit = self._memo.get(addr)
        if hit is None:
            hit = self._memo[addr] = bool(addr in self._contents)
        return hit


def judge_lockout(plan: Plan, management, lists: Mapping | None = None) -> tuple[Finding, ...]:
    """What in `plan` would drop (or rate-limit) management traffic, both stages, in the
    order found, without repeats. A monitor Plan drops nothing: no findings."""
    if management is None or plan.xdp.mode == "monitor":
        return ()
    chains, rules = _nft_rules(plan)
    index = {name: _Lookup(contents) for name, contents in (lists or {}).items()}
    edges = _edges(plan, rules)
    found: dict[Finding, None] = {}
    for flow in _flows(management):
        for p in _probes(flow, edges):
            d, _ = evaluate(plan, p, None, 0, lists=index)
            rule = plan.xdp.rules[d.rule] if d.rule is not None else None
            text = rule.text if rule is not None else ""
            if d.verdict == "drop":
                found[Finding("xdp", "drop", d.rule, flow.what, text)] = None
            elif d.reason == "limit":
                found[Finding("xdp", "limit", d.rule, flow.what, text)] = None
            for kind, i in _nft_verdicts(chains, rules, p, flow.ct):
                found[Finding("nft", kind, i, flow.what,
                              "" if i is None else rules[i].comment)] = None
    return tuple(found)


# ---- the nftables stage: the compiler's vocabulary, read as a filter would --------------

def _nft_chains(doc: dict) -> tuple[list[dict], list[dict]]:
    """(base chains, rules) added by the document, in document order."""
    chains, rules = [], []
    for cmd in doc.get("nftables", ()):
        add = cmd.get("add") if isinstance(cmd, dict) else None
        if not isinstance(add, dict):
            continue
        if isinstance(add.get("chain"), dict) and "hook" in add["chain"]:
            chains.append(add["chain"])
        if isinstance(add.get("rule"), dict):
            rules.append(add["rule"])
    return chains, rules


_L4 = {"tcp": 6, "udp": 17, "icmp": 1, "ipv6-icmp": 58}
_FLAG_BITS = {"fin": 0x01, "syn": 0x02, "rst": 0x04, "psh": 0x08, "ack": 0x10, "urg": 0x20,
              "ecn": 0x40, "cwr": 0x80}


def _right_values(right) -> list:
    """A match's right side as Python values: ints, strings, (lo, hi), networks."""
    if isinstance(right, list):
        return [v for x in right for v in _right_values(x)]
    if isinstance(right, dict):
        if "set" in right:
            return _right_values(right["set"])
        if "range" in right and isinstance(right["range"], list) and len(right["range"]) == 2:
            return [tuple(right["range"])]
        if "prefix" in right and isinstance(right["prefix"], dict):
            try:
                return [ipaddress.ip_network(f"{right['prefix']['addr']}/{right['prefix']['len']}")]
            except (KeyError, ValueError, TypeError):
                return [None]
        return [None]
    if isinstance(right, str) and (":" in right or right[:1].isdigit()):
        try:
            return [ipaddress.ip_network(right)]
        except ValueError:
            return [right]
    return [right]


def _left(left, p: Packet, ct: str):
    """The packet's value for a match's left side; ... (Ellipsis) when not understood."""
    if not isinstance(left, dict):
        return ...
    if "payload" in left and isinstance(left["payload"], dict):
        proto, fld = left["payload"].get("protocol"), left["payload"].get("field")
        if proto in ("ip", "ip6"):
            if (proto == "ip") != (p.src.version == 4):
                return None          # the other family: the match fails
            return {"saddr": p.src, "daddr": p.dst}.get(fld, ...)
        if proto in ("tcp", "udp", "th"):
            if proto != "th" and _L4[proto] != p.proto:
                return None
            if fld == "flags" and proto == "tcp":
                return ("flags", p.tcp_flags)
            return {"sport": p.sport, "dport": p.dport}.get(fld, ...)
        return ...
    if left.get("meta", {}) == {"key": "l4proto"}:
        return p.proto
    if left.get("ct", {}) == {"key": "state"}:
        return ("ct", ct)
    return ...


def _match(left, op, rights: tuple, p: Packet, ct: str) -> bool | None:
    """True / False, or None when the match is beyond this reader (then it may match)."""
    value = _left(left, p, ct)
    if value is ...:
        return None
    if value is None:
        return False
    if None in rights:
        return None
    if isinstance(value, tuple) and value[0] == "flags":
        bits = 0
        for r in rights:
            if r not in _FLAG_BITS:
                return None
            bits |= _FLAG_BITS[r]
        return bool((value[1] or 0) & bits) if op == "in" else (value[1] or 0) == bits
    if isinstance(value, tuple) and value[0] == "ct":
        return value[1] in rights
    for r in rights:
        if isinstance(r, tuple) and isinstance(value, int) and r[0] <= value <= r[1]:
            return True
        if isinstance(r, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
            if value.version == r.version and value in r:
                return True
        elif isinstance(r, str) and _L4.get(r) == value or r == value:
            return True
    return False


@dataclass(frozen=True)
class _NftRule:
    """A rule of the document, read once per Plan: its matches parsed, its verdict known."""
    index: int
    chain: str
    comment: str
    matches: tuple          # (left, op, right values)
    limited: bool           # a set statement: a rate or connection limit
    drops: bool
    accepts: bool
    synproxy: bool


def _nft_rules(plan: Plan) -> tuple[list[dict], list[_NftRule]]:
    cached = plan._cache.get("lockout-nft")
    if cached is None:
        chains, rules = _nft_chains(plan.nft)
        read = []
        for i, rule in enumerate(rules):
            exprs = [e for e in rule.get("expr", ()) if isinstance(e, dict)]
            matches = tuple((e["match"].get("left"), e["match"].get("op"),
                             tuple(_right_values(e["match"].get("right"))))
                            for e in exprs if isinstance(e.get("match"), dict))
            read.append(_NftRule(i, str(rule.get("chain")), str(rule.get("comment", "")), matches,
                                 any("set" in e for e in exprs),
                                 any("drop" in e or "reject" in e for e in exprs),
                                 any("accept" in e for e in exprs),
                                 any("synproxy" in e for e in exprs)))
        cached = plan._cache["lockout-nft"] = (chains, read)
    return cached


def _nft_verdicts(chains: list[dict], rules: list[_NftRule], p: Packet, ct: str):
    """(kind, rule index | None) for each base chain that may drop or limit the packet."""
    for chain in chains:
        if chain.get("hook") not in ("prerouting", "input"):
            continue
        decided = False
        for rule in rules:
            if rule.chain != chain.get("name") or rule.synproxy:
                continue   # synproxy answers the handshake itself: never drops a real client
            sure, matched = True, True
            for left, op, rights in rule.matches:
                hit = _match(left, op, rights, p, ct)
                if hit is False:
                    matched = False
                    break
                sure = sure and hit is True
            if not matched:
                continue
            if rule.limited:   # drops only when over the limit
                yield "limit", rule.index
                continue
            if rule.drops:
                yield "drop", rule.index
                if sure:
                    decided = True
                    break
            elif sure and rule.accepts:
                decided = True
                break
        if not decided and chain.get("policy") == "drop":
            yield "drop", None

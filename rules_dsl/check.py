"""The checker: semantic errors, warnings, and the lockout guard, over resolved rules.

Shadowing is decided by per-field inclusion (a later rule whose every field is inside an
earlier rule's field can never decide a packet): sound, so a rule reported shadowed never
decides any packet in the evaluator; it may miss a rule covered only by a union of rules.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from . import nodes as n
from .diagnostics import Diagnostic, Reporter
from .plan import MAX_ADDR_SETS, MAX_RATE_PROFILES, MAX_RULE_LIMITS, MAX_RULES
from .resolve import RAddrSet, Resolved, RRule, resolve


@dataclass(frozen=True)
class Management:
    """What must stay reachable: the hub (address, port) and SSH from admin prefixes."""
    hub_address: str | ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    hub_port: int = 443
    ssh_port: int = 22
    admin_prefixes: tuple = field(default=())

    def __post_init__(self):
        if self.hub_address is not None and isinstance(self.hub_address, str):
            object.__setattr__(self, "hub_address", ipaddress.ip_address(self.hub_address))
        object.__setattr__(self, "admin_prefixes", tuple(
            ipaddress.ip_network(p, strict=False) if isinstance(p, str) else p
            for p in self.admin_prefixes))


def check_resolved(policy: n.Policy, management: Management | None) -> tuple[Resolved, list[Diagnostic]]:
    rep = Reporter(policy.source, policy.filename)
    res = resolve(policy, rep)
    res.default_pos = policy.default.pos if policy.default else n.Pos(1, 1, 1, 2)
    _limits(res, rep)
    _shadowing(res, rep)
    _established(res, rep)
    if management is not None and res.mode == "enforce" and not rep.has_errors:
        _lockout(res, rep, management)
    return res, rep.items


def check(policy: n.Policy, management: Management | None = None) -> list[Diagnostic]:
    """All errors and warnings, in source order (errors first on the same line)."""
    return sort_diagnostics(check_resolved(policy, management)[1])


def sort_diagnostics(items: list[Diagnostic]) -> list[Diagnostic]:
    return sorted(items, key=lambda d: (d.line, d.col, d.severity != "error"))


# ---- data plane limits -------------------------------------------------------------------

def _limits(res: Resolved, rep: Reporter) -> None:
    if len(res.rules) > MAX_RULES:
        rep.error(res.rules[MAX_RULES].node.pos,
                  f"more than {MAX_RULES} rules: the data plane holds {MAX_RULES}",
                  "move large address lists into sets or hub lists")
    seen: list[str] = []
    for r in res.rules:
        for s in (r.src, r.dst):
            if s is not None and s.key not in seen:
                seen.append(s.key)
                if len(seen) == MAX_ADDR_SETS + 1:
                    rep.error(r.node.pos, f"more than {MAX_ADDR_SETS} address sets: the data "
                              f"plane holds {MAX_ADDR_SETS}", "merge sets, or use hub lists")
    profiles = {p for r in res.rules for p in r.profiles}
    if len(profiles) > MAX_RATE_PROFILES:
        rep.error(n.Pos(1, 1, 1, 2), f"more than {MAX_RATE_PROFILES} different limits")
    for r in res.rules:
        _stacked(r, rep)


def _stacked(r: RRule, rep: Reporter) -> None:
    """Stacked limits: at most MAX_RULE_LIMITS, none repeated, none moot. Limits are
    consulted in order and a later one sees only what the earlier ones admitted, so a
    later limit on the same key with a rate and burst no smaller never refuses."""
    lims = r.node.limits
    if len(lims) > MAX_RULE_LIMITS:
        rep.error(lims[MAX_RULE_LIMITS].pos, f"more than {MAX_RULE_LIMITS} limits on one rule: "
                  f"the data plane holds {MAX_RULE_LIMITS}", "split the traffic over several rules")
    kept = r.profiles[:MAX_RULE_LIMITS]   # past the error above: no pairs, no quadratic cost
    for j, p in enumerate(kept):
        for i, q in enumerate(kept[:j]):
            same_key = (p.unit, p.key, p.v4_prefix, p.v6_prefix) == (q.unit, q.key, q.v4_prefix,
                                                                   q.v6_prefix)
            if p == q:
                rep.error(lims[j].pos, f"this limit repeats limit {i + 1} of the rule",
                          "remove one of them")
                break
            elif same_key and p.rate >= q.rate and p.burst >= q.burst:
                rep.warning(lims[j].pos, f"limit {i + 1} of the rule is as strict on the same "
                            "key and comes first: this one never refuses a packet", "remove it")
                break


# ---- shadowing ---------------------------------------------------------------------------

# Shadowing budget: set-in-set lookups per check. A policy past it gets an error saying so
# (BUDGET_MESSAGE), never a check that runs for minutes.
MAX_SHADOW_WORK = 2_000_000
BUDGET_MESSAGE = "this policy is too large to check for shadowing"


class ShadowBudget(Exception):
    """The shadowing check ran past MAX_SHADOW_WORK (caught in `_shadowing`)."""


class _Prefixes:
    """An address set by (family, prefix length) → network numbers, so "is x inside one of
    the set's prefixes" is one lookup per distinct length (≤ 33 or 129), not one
    comparison per member: pairwise tests made a 5,000-address set take 40 s."""

    def __init__(self, nets) -> None:
        self.by_len: dict[tuple[int, int], set[int]] = {}
        for y in nets:
            self.by_len.setdefault((y.version, y.prefixlen), set()).add(int(y.network_address))
        self.lens = {4: sorted(p for v, p in self.by_len if v == 4),
                     6: sorted(p for v, p in self.by_len if v == 6)}

    def holds(self, x) -> bool:
        bits = x.max_prefixlen
        addr = int(x.network_address)
        for plen in self.lens[x.version]:
            if plen > x.prefixlen:
                break
            if (addr >> (bits - plen)) << (bits - plen) in self.by_len[(x.version, plen)]:
                return True
        return False


class Covers:
    """`covers` with set indexes and set-pair answers kept for one check (sets are shared
    by many rules), and the work counted against `budget`."""

    def __init__(self, budget: int | None = None) -> None:
        self.budget = MAX_SHADOW_WORK if budget is None else budget
        self._index: dict[int, tuple[RAddrSet, _Prefixes]] = {}
        self._pairs: dict[tuple[int, int], bool] = {}

    def _prefixes(self, s: RAddrSet) -> _Prefixes:
        got = self._index.get(id(s))
        if got is None or got[0] is not s:
            self.spend(len(s.nets))
            got = self._index[id(s)] = (s, _Prefixes(s.nets))
        return got[1]

    def spend(self, work: int) -> None:
        self.budget -= work
        if self.budget < 0:
            raise ShadowBudget()

    def set_covers(self, e: RAddrSet | None, l: RAddrSet | None) -> bool:
        if e is None:
            return True
        if l is None:
            return {str(x) for x in e.nets} >= {"0.0.0.0/0", "::/0"}
        key = (id(e), id(l))
        if key not in self._pairs:
            self._pairs[key] = self._set_covers(e, l)
        return self._pairs[key]

    def _set_covers(self, e: RAddrSet, l: RAddrSet) -> bool:
        if not set(l.lists) <= set(e.lists):
            return False
        index = self._prefixes(e)
        self.spend(len(l.nets) * max(1, len(index.by_len)))
        return all(index.holds(x) for x in l.nets)

    def __call__(self, e: RRule, l: RRule) -> bool:
        """Every packet that `l` matches, `e` matches too."""
        self.spend(1)
        return (_vals_covers(e.proto, l.proto) and _ranges_covers(e.dport, l.dport)
                and _ranges_covers(e.sport, l.sport) and self.set_covers(e.src, l.src)
                and self.set_covers(e.dst, l.dst) and _flags_covers(e.tcp_flags, l.tcp_flags)
                and _range_covers(e.length, l.length) and _range_covers(e.ttl, l.ttl)
                and (e.fragment == "any" or e.fragment == l.fragment)
                and _vals_covers(e.icmp_type, l.icmp_type))


def _set_covers(e: RAddrSet | None, l: RAddrSet | None) -> bool:
    return Covers(budget=1 << 62).set_covers(e, l)


def _vals_covers(e, l) -> bool:
    return e is None or (l is not None and l <= e)


def _ranges_covers(e, l) -> bool:
    if e is None:
        return True
    if l is None:
        return False
    return all(any(a <= lo and hi <= b for a, b in e) for lo, hi in l)


def _range_covers(e, l) -> bool:
    return e is None or (l is not None and e[0] <= l[0] and l[1] <= e[1])


def _flags_covers(e, l) -> bool:
    if e is None:
        return True
    if l is None:
        return False
    return all(any(me & ml == me and vl & me == ve for me, ve in e) for ml, vl in l)


def covers(e: RRule, l: RRule) -> bool:
    """Every packet that `l` matches, `e` matches too."""
    return Covers(budget=1 << 62)(e, l)


_FIELDS = ("src", "dst", "proto", "sport", "dport", "tcp_flags", "length", "icmp_type", "ttl")


def _shape(r: RRule) -> int:
    bits = 0
    for i, f in enumerate(_FIELDS):
        if getattr(r, f) is not None:
            bits |= 1 << i
    if r.fragment != "any":
        bits |= 1 << len(_FIELDS)
    return bits


def never_matches(r: RRule) -> bool:
    return any(s is not None and s.empty for s in (r.src, r.dst))


def shadowed(rules: list[RRule], budget: int | None = None
             ) -> dict[int, tuple[str, int | None]]:
    """index → ("never"|"duplicate"|"shadowed", earlier index or None); raises ShadowBudget
    past `budget`."""
    covers = Covers(MAX_SHADOW_WORK if budget is None else budget)
    out: dict[int, tuple[str, int | None]] = {}
    first: dict[RRule, int] = {}
    by_shape: dict[int, list[int]] = {}
    for i, r in enumerate(rules):
        if never_matches(r):
            out[i] = ("never", None)
            continue
        if r in first:
            out[i] = ("duplicate", first[r])
            continue
        shape = _shape(r)
        hit = None
        for s, idxs in by_shape.items():
            if s & ~shape:
                continue   # the earlier rule constrains a field this one leaves open
            for j in idxs:
                if covers(rules[j], r) and (hit is None or j < hit):
                    hit = j
                    break
        if hit is not None:
            out[i] = ("shadowed", hit)
        first.setdefault(r, i)
        by_shape.setdefault(shape, []).append(i)
    return out


def _shadowing(res: Resolved, rep: Reporter) -> None:
    try:
        found = shadowed(res.rules)
    except ShadowBudget:
        rep.error(res_default_pos(res), f"{BUDGET_MESSAGE} (over {MAX_SHADOW_WORK:,} steps)",
                  "use fewer, larger prefixes, or hub lists for large address sets")
        return
    for i, (kind, j) in sorted(found.items()):
        r = res.rules[i].node
        if kind == "never":
            rep.warning(r.pos, "this rule can never match: it uses an empty set")
        elif kind == "duplicate":
            rep.warning(r.pos, f"this rule repeats the rule on line {res.rules[j].node.pos.line}",
                        "remove one of them")
        else:
            rep.warning(r.pos, "this rule can never match: the rule on line "
                        f"{res.rules[j].node.pos.line} takes every packet it would",
                        "move it above that rule, or remove it")


# ---- flows that must get through: management and replies ----------------------------------

@dataclass(frozen=True)
class Flow:
    """A class of TCP packets: src inside `src`, any dst, ports and length in ranges."""
    src: ipaddress.IPv4Network | ipaddress.IPv6Network
    sport: tuple[int, int]
    dport: tuple[int, int]
    flags: int
    length: tuple[int, int] = (40, 65535)
    proto: int = 6


def _overlap(a, b) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def _may_must_set(s: RAddrSet | None, net, is_src: bool) -> tuple[bool, bool]:
    if s is None:
        return True, True
    fam = [x for x in s.nets if x.version == net.version]
    if not is_src:
        full = any(x.prefixlen == 0 for x in fam)
        return bool(fam), full
    may = any(net.overlaps(x) for x in fam)
    must = any(net.subnet_of(x) for x in fam)
    return may, must


def _range_mm(r, cls) -> tuple[bool, bool]:
    if r is None:
        return True, True
    return any(_overlap(x, cls) for x in r), any(a <= cls[0] and cls[1] <= b for a, b in r)


def flow_match(r: RRule, f: Flow) -> tuple[bool, bool]:
    """(may, must): some / every packet of the flow matches the rule."""
    parts = [
        _may_must_set(r.src, f.src, True), _may_must_set(r.dst, f.src, False),
        ((r.proto is None or f.proto in r.proto),) * 2,
        _range_mm(r.sport, f.sport), _range_mm(r.dport, f.dport),
        ((r.tcp_flags is None or any(f.flags & m == v for m, v in r.tcp_flags)),) * 2,
        _range_mm((r.length,) if r.length else None, f.length),
        _range_mm((r.ttl,) if r.ttl else None, (1, 255)),
        ((r.fragment != "yes"),) * 2, ((r.icmp_type is None),) * 2,
    ]
    return all(p[0] for p in parts), all(p[1] for p in parts)


def _lockout(res: Resolved, rep: Reporter, m: Management) -> None:
    """The lockout guard (rules_dsl.lockout) on the compiled Plan, its findings placed on
    the rules they name. The lists' contents are not known here: taken as empty."""
    from .compiler import compile_resolved
    from .fmt import format_stateful
    from .lockout import judge_lockout

    sev = "error" if res.lockout_guard else "warning"
    override = "" if sev == "error" else " (allowed by 'lockout-guard off')"
    stateful = {format_stateful(r.node)[:120]: r.node for r in res.stateful}
    for f in judge_lockout(compile_resolved(res), m):
        node = res.rules[f.rule].node if f.stage == "xdp" and f.rule is not None else (
            stateful.get(f.text) if f.stage == "nft" else None)
        pos = node.pos if node is not None else res_default_pos(res)
        if f.kind == "limit":
            rep.warning(pos, f"this rule rate-limits {f.what}: an operator could be locked out",
                        "pass management traffic in an earlier rule")
            continue
        example = ("pass tcp from ADMIN_PREFIX dport 22" if f.what.startswith("SSH")
                   else f"pass tcp from {m.hub_address} sport {m.hub_port}")
        if f.rule is None:
            rep.add(sev, pos, f"the default verdict drops {f.what}: this would lock the operator "
                    "out" + override, f"pass it in a rule, e.g. {example} (or pass tcp flags "
                    "ack/ack for every reply to this server's own connections)")
            continue
        rep.add(sev, pos, f"this rule drops {f.what}: this would lock the operator out" + override,
                f"pass it in an earlier rule, e.g. {example}, or, if intended, write "
                "'lockout-guard off'")


def res_default_pos(res: Resolved) -> n.Pos:
    return getattr(res, "default_pos", None) or n.Pos(1, 1, 1, 2)


def _established(res: Resolved, rep: Reporter) -> None:
    if res.default != "drop":
        return
    # Replies to a connection this server opens: the SYN-ACK, then ACKs.
    for net in (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")):
        for flags, what in ((0x12, "SYN-ACK"), (0x10, "ACK")):
            flow = Flow(net, (1, 65535), (1024, 65535), flags)
            safe = False
            for r in res.rules:
                # Only a rule dropping *all* such replies hides the pass; one dropping some
                # (a deny list, odd flags, low TTLs) is a filter the operator meant.
                _, must = flow_match(r, flow)
                if must:
                    safe = r.action == "pass"
                    break
            if not safe:
                rep.warning(res_default_pos(res), "the default is drop and no rule passes "
                            f"replies to connections this server opens (IPv{net.version} {what}): "
                            "its own outgoing connections, the hub's included, will fail",
                            "add 'pass tcp flags ack/ack' early, and in stateful "
                            "{ drop ct state invalid }")
                return

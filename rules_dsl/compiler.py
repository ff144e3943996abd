"""Resolved policy → Plan (docs/plan.md). Deterministic: same policy, same bytes."""
from __future__ import annotations

from .fmt import format_rule
from .nft import build_nft
from .plan import AddrSet, Plan, RateProfile, XdpPlan, XdpRule, canonical_json
from .resolve import RAddrSet, Resolved


def _split(s: RAddrSet, sid: int) -> AddrSet:
    parts: dict[tuple[int, bool], list[str]] = {(4, True): [], (4, False): [], (6, True): [],
                                                (6, False): []}
    for net in s.nets:
        host = net.prefixlen == net.max_prefixlen
        parts[(net.version, host)].append(str(net.network_address) if host else str(net))
    return AddrSet(sid, s.name or f"_inline{sid}", tuple(parts[(4, True)]),
                   tuple(parts[(4, False)]), tuple(parts[(6, True)]), tuple(parts[(6, False)]),
                   s.lists)


def compile_resolved(res: Resolved) -> Plan:
    sets: dict[str, AddrSet] = {}
    profiles: dict = {}
    rules = []

    def sid(s: RAddrSet | None) -> int | None:
        if s is None:
            return None
        if s.key not in sets:
            sets[s.key] = _split(s, len(sets))
        return sets[s.key].id

    for r in res.rules:
        prof = []
        for p in r.profiles:
            if p not in profiles:
                profiles[p] = RateProfile(len(profiles), p.unit, p.rate, p.burst, p.key,
                                          p.v4_prefix, p.v6_prefix, p.block_s)
            prof.append(profiles[p].id)
        rules.append(XdpRule(
            r.action, sid(r.src), sid(r.dst),
            tuple(sorted(r.proto)) if r.proto is not None else None, r.sport, r.dport,
            r.tcp_flags, r.length, r.fragment,
            tuple(sorted(r.icmp_type)) if r.icmp_type is not None else None, r.ttl, tuple(prof),
            format_rule(r.node) if r.node is not None else ""))
    xdp = XdpPlan(res.mode, res.default, res.malformed, tuple(sets.values()),
                  tuple(profiles.values()), tuple(rules))
    return Plan(res.name, xdp, canonical_json(build_nft(res.stateful, res.mode)))

"""A plain-English summary of a policy (`bulwark rules explain`)."""
from __future__ import annotations

from .nodes import Policy
from .plan import Plan
from .vocab import PROTOCOL_NAMES, TCP_FLAGS

_FLAG_NAMES = {v: k for k, v in TCP_FLAGS.items()}


def _flags(bits: int) -> str:
    return "+".join(_FLAG_NAMES[b] for b in sorted(_FLAG_NAMES) if bits & b) or "none"


def _ranges(rs) -> str:
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in rs)


def _set(plan: Plan, sid: int) -> str:
    s = plan.xdp.sets[sid]
    n = len(s.v4_hosts) + len(s.v4_prefixes) + len(s.v6_hosts) + len(s.v6_prefixes)
    members = list(s.v4_hosts + s.v4_prefixes + s.v6_hosts + s.v6_prefixes)
    what = ", ".join(members[:3]) + (f" and {n - 3} more" if n > 3 else "")
    lists = " and ".join(f"hub list '{x}'" for x in s.lists)
    body = " plus ".join(x for x in (what, lists) if x) or "nothing (empty)"
    return body if s.name.startswith("_inline") else f"set '{s.name}' ({body})"


def explain(policy: Policy, plan: Plan) -> str:
    x = plan.xdp
    lines = [f"Policy '{plan.name}' ({'monitor mode: nothing is dropped, would-be drops are counted' if x.mode == 'monitor' else 'enforced'}).",
             "Frames that are not IP always pass. Malformed IP packets are "
             f"{'dropped' if x.malformed == 'drop' else 'passed'}.",
             f"Packets are checked against {len(x.rules)} rule(s) in order; the first that "
             "matches decides."]
    for i, r in enumerate(x.rules, 1):
        what = []
        if r.proto is not None:
            what.append("/".join(PROTOCOL_NAMES.get(p, str(p)).upper() for p in r.proto))
        what.append("packets")
        if r.src is not None:
            what.append(f"from {_set(plan, r.src)}")
        if r.dst is not None:
            what.append(f"to {_set(plan, r.dst)}")
        if r.sport is not None:
            what.append(f"from port {_ranges(r.sport)}")
        if r.dport is not None:
            what.append(f"to port {_ranges(r.dport)}")
        if r.tcp_flags is not None:
            what.append("with flags " + " or ".join(
                f"{_flags(v)} set" + (f" and {_flags(m & ~v)} clear" if m & ~v else "")
                for m, v in r.tcp_flags))
        if r.icmp_type is not None:
            what.append(f"of ICMP type {', '.join(map(str, r.icmp_type))}")
        if r.length is not None:
            what.append(f"of {r.length[0]}-{r.length[1]} bytes")
        if r.ttl is not None:
            what.append(f"with TTL {r.ttl[0]}-{r.ttl[1]}")
        if r.fragment != "any":
            what.append("that are fragments" if r.fragment == "yes" else "that are not fragments")
        if r.action == "limit":
            verb = "are passed " + " and ".join(_limit_text(x.rate_profiles[pid])
                                                for pid in r.rate_profiles)
            verb += ("; the excess is dropped" if len(r.rate_profiles) == 1 else
                     "; a packet over any of them is dropped (the limits before it stay charged)")
        else:
            verb = "are passed" if r.action == "pass" else "are dropped"
        lines.append(f"  {i}. {' '.join(what)} {verb}.    [{r.text}]")
    lines.append(f"Anything else is {'dropped' if x.default == 'drop' else 'passed'} (default).")
    nft = [c for c in plan.nft["nftables"] if "add" in c and "rule" in c["add"]]
    if policy.stateful:
        lines.append(f"Then, in nftables (table inet bulwark), {len(policy.stateful)} stateful "
                     "rule(s) apply to what passed:")
        from .fmt import format_stateful
        for i, r in enumerate(policy.stateful, 1):
            lines.append(f"  {i}. {format_stateful(r)}")
    elif nft:  # pragma: no cover - nft rules come only from the stateful block
        pass
    return "\n".join(lines) + "\n"


def _limit_text(p) -> str:
    key = ("in total" if p.key == "global" else
           f"per {'source' if p.key == 'src' else 'destination'} (/{p.v4_prefix} IPv4, /{p.v6_prefix} IPv6)")
    s = f"up to {p.rate} {p.unit}/s (bursts of {p.burst}) {key}"
    if p.block_s:
        s += f", a key that exceeds it blocked for {p.block_s} s"
    return s

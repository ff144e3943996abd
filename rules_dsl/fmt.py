"""The one canonical layout of a policy: `fmt(policy) -> str`, comments kept.

Order: header (policy, default, mode, malformed, lockout-guard), sets, rules, the stateful
block, test lists, expect lines; one statement per line; matchers in a fixed order.
`parse(fmt(p)) == p` for every policy `p`.
"""
from __future__ import annotations

from . import nodes as n

INDENT = "    "


def _vals(items, one) -> str:
    parts = [one(i) for i in items]
    return parts[0] if len(parts) == 1 else "{ " + ", ".join(parts) + " }"


def _addr(i) -> str:
    return f"@{i.name}" if isinstance(i, n.SetRef) else i.text


def _port(i) -> str:
    if isinstance(i, n.SetRef):
        return f"@{i.name}"
    if isinstance(i, n.PortName):
        return i.name
    return str(i.lo) if i.lo == i.hi else f"{i.lo}-{i.hi}"


def _flags(c: n.FlagCombo) -> str:
    s = "|".join(c.value)
    return s if c.mask is None else s + "/" + "|".join(c.mask)


def _cmp(c: n.Cmp) -> str:
    if c.op == "=":
        return str(c.a)
    if c.op == "-":
        return f"{c.a}-{c.b}"
    return f"{c.op} {c.a}"


def duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _ms(ms: int) -> str:
    return duration(ms // 1000) if ms % 1000 == 0 and ms else f"{ms}ms"


def _proto(items) -> str:
    if len(items) == 1 and items[0].value in ("tcp", "udp", "icmp", "icmpv6"):
        return str(items[0].value)
    return "proto " + _vals(items, lambda p: str(p.value))


def _common(r) -> list[str]:
    out = []
    if r.proto is not None:
        out.append(_proto(r.proto))
    if r.src is not None:
        out.append("from " + _vals(r.src, _addr))
    if r.dst is not None:
        out.append("to " + _vals(r.dst, _addr))
    if r.sport is not None:
        out.append("sport " + _vals(r.sport, _port))
    if r.dport is not None:
        out.append("dport " + _vals(r.dport, _port))
    return out


def format_limit(lim: n.Limit) -> str:
    s = f"limit {lim.rate}" + ("" if lim.unit == "packets" else f" {lim.unit}") + f"/{lim.per}"
    if lim.burst is not None:
        s += f" burst {lim.burst}" + (f" {lim.burst_unit}" if lim.burst_unit else "")
    if lim.key is not None:
        k = lim.key
        if k.kind == "global":
            s += " global"
        else:
            s += f" per {k.kind}"
            if k.v4 is not None:
                s += f" ipv4/{k.v4}"
            if k.v6 is not None:
                s += f" ipv6/{k.v6}"
    if lim.block_s is not None:
        s += f" block {duration(lim.block_s)}"
    return s


def format_rule(r: n.Rule) -> str:
    out = [r.action.value] + _common(r)
    if r.flags is not None:
        out.append("flags " + _vals(r.flags, _flags))
    if r.icmp_type is not None:
        out.append("type " + _vals(r.icmp_type, lambda t: str(t.value)))
    if r.length is not None:
        out.append("length " + _cmp(r.length))
    if r.ttl is not None:
        out.append("ttl " + _cmp(r.ttl))
    if r.fragment is not None:
        out.append("fragment" if r.fragment.value == "yes" else "fragment no")
    out.extend(format_limit(lim) for lim in r.limits)
    return " ".join(out)


def format_stateful(r: n.StatefulRule) -> str:
    out = [r.action.value] + _common(r)
    if r.ct_state is not None:
        out.append("ct state " + ",".join(w.value for w in r.ct_state))
    if r.rate is not None:
        s = f"rate over {r.rate.rate}/{r.rate.per}"
        if r.rate.burst is not None:
            s += f" burst {r.rate.burst}"
        out.append(s + " per src")
    if r.connections is not None:
        out.append(f"connections over {r.connections} per src")
    if r.mss is not None:
        out.append(f"mss {r.mss}")
    if r.wscale is not None:
        out.append(f"wscale {r.wscale}")
    if r.timestamp:
        out.append("timestamp")
    if r.sack_perm:
        out.append("sack-perm")
    return " ".join(out)


def _endpoint(addr: str, port: int | None) -> str:
    if port is None:
        return addr
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def format_packet(p: n.PacketSpec) -> str:
    if p.kind != "ip":
        return p.kind
    out = [str(p.proto), _endpoint(p.src, p.sport), "->", _endpoint(p.dst, p.dport)]
    if p.flags is not None:
        out.append("flags " + "|".join(p.flags))
    if p.icmp_type is not None:
        out.append(f"type {p.icmp_type}")
    if p.length is not None:
        out.append(f"length {p.length}")
    if p.ttl is not None:
        out.append(f"ttl {p.ttl}")
    if p.fragment is not None:
        out.append(f"fragment {p.fragment}")
    return " ".join(out)


def format_expect(e: n.Expect) -> str:
    s = f"expect {e.verdict.value} {format_packet(e.packet)}"
    if e.repeat is not None:
        s += f" x {e.repeat}"
    if e.at_ms is not None:
        s += f" at {_ms(e.at_ms)}"
    return s


def _quote(s: str) -> str:
    return f'"{s}"'


def fmt(policy: n.Policy) -> str:
    """The canonical text of `policy`, with its comments carried along."""
    groups: list[list[tuple[object, str, bool]]] = []   # (node for comments, text, indented)
    header = []
    if policy.name is not None:
        header.append((policy.name, f"policy {_quote(policy.name.value)}", False))
    for word, key in ((policy.default, "default"), (policy.mode, "mode"),
                      (policy.malformed, "malformed"), (policy.lockout_guard, "lockout-guard")):
        if word is not None:
            header.append((word, f"{key} {word.value}", False))
    groups.append(header)
    groups.append([(s, f"set {s.name} {{ " + ", ".join(
        _addr(i) if isinstance(i, n.Addr) else f'list {_quote(i.name)}' if isinstance(i, n.ListRef)
        else _port(i) for i in s.items) + " }" if s.items else f"set {s.name} {{ }}", False)
        for s in policy.sets])
    groups.append([(r, format_rule(r), False) for r in policy.rules])
    if policy.stateful:
        groups.append([(None, "stateful {", False)]
                      + [(r, format_stateful(r), True) for r in policy.stateful]
                      + [(None, "}", False)])
    tests = [(t, f"test list {_quote(t.name)} {{ " + ", ".join(a.text for a in t.items) + " }"
              if t.items else f"test list {_quote(t.name)} {{ }}", False) for t in policy.test_lists]
    tests += [(e, format_expect(e), False) for e in policy.expects]
    groups.append(tests)
    leading, trailing, tail = _place_comments(policy, [x for g in groups for x in g])
    out: list[str] = []
    for g in groups:
        if not g:
            continue
        if out:
            out.append("")
        for node, text, indented in g:
            pad = INDENT if indented else ""
            for c in leading.get(id(node), ()):
                out.append(pad + c)
            line = pad + text
            if id(node) in trailing:
                line += "  " + trailing[id(node)]
            out.append(line)
    if tail:
        if out:
            out.append("")
        out.extend(tail)
    return "\n".join(out) + "\n"


def _place_comments(policy: n.Policy, items):
    leading: dict[int, list[str]] = {}
    trailing: dict[int, str] = {}
    tail: list[str] = []
    spans = sorted(((node.pos.line, node.pos.end_line or node.pos.line, id(node))
                    for node, _, _ in items if node is not None and node.pos.line > 0))
    for c in policy.comments:
        placed = False
        for start, end, key in spans:
            if start <= c.line <= end:
                if c.line == end and key not in trailing:
                    trailing[key] = c.text
                else:
                    leading.setdefault(key, []).append(c.text)
                placed = True
                break
            if start > c.line:
                leading.setdefault(key, []).append(c.text)
                placed = True
                break
        if not placed:
            tail.append(c.text)
    return leading, trailing, tail

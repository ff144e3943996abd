"""Stateful rules → a libnftables JSON document for table `inet bulwark` (docs/plan.md).

The document replaces the table in one transaction: add (so delete cannot fail), delete,
add, then the chains, sets and rules. It touches no other table.

Monitor mode is a projection of the enforce document (`monitor_nft`), so a policy in
`mode monitor` and a dry-run deployment of an enforce Plan (the agent projects it at
install time, as it sets the guard's monitor flag) install the same table.
"""
from __future__ import annotations

from .fmt import format_stateful
from .resolve import RStateful

TABLE = {"family": "inet", "name": "bulwark"}
_REF = {"family": "inet", "table": "bulwark"}
PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "ipv6-icmp"}
SET_TIMEOUT_S = {"second": 60, "minute": 120, "hour": 7200, "day": 172800}


def _addr(net):
    if net.prefixlen == net.max_prefixlen:
        return str(net.network_address)
    return {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}


def _right(items):
    return items[0] if len(items) == 1 else {"set": items}


def _ports(ranges):
    return _right([lo if lo == hi else {"range": [lo, hi]} for lo, hi in ranges])


def _match(left, right, op="=="):
    return {"match": {"op": op, "left": left, "right": right}}


def _payload(proto, fld):
    return {"payload": {"protocol": proto, "field": fld}}


def _rule_exprs(r: RStateful, fam: int | None, set_name: str | None) -> list:
    ip = "ip" if fam == 4 else "ip6"
    ex = []
    for nets, fld in ((r.src, "saddr"), (r.dst, "daddr")):
        if nets is not None:
            mine = [x for x in nets if x.version == fam]
            ex.append(_match(_payload(ip, fld), _right([_addr(x) for x in mine])))
    ports = r.sport is not None or r.dport is not None
    if r.proto is not None:
        single = len(r.proto) == 1
        if not (single and ports):
            names = [PROTO_NAMES.get(p, p) for p in sorted(r.proto)]
            ex.append(_match({"meta": {"key": "l4proto"}}, _right(names)))
    l4 = PROTO_NAMES[next(iter(r.proto))] if ports and len(r.proto) == 1 else "th"
    for ranges, fld in ((r.sport, "sport"), (r.dport, "dport")):
        if ranges is not None:
            ex.append(_match(_payload(l4, fld), _ports(ranges)))
    states = list(r.ct_state or ())
    if not states and (r.rate or r.connections):
        states = ["new"]
    if r.action == "synproxy":
        states = ["invalid", "untracked"]
    if states:
        ex.append(_match({"ct": {"key": "state"}}, states if len(states) > 1 else states[0],
                         "in"))
    key = _payload(ip, "saddr")
    if r.rate is not None:
        rate, per, burst = r.rate
        ex.append({"set": {"op": "update", "elem": key, "set": "@" + set_name, "stmt": [
            {"limit": {"rate": rate, "per": per, "burst": burst, "inv": True}}]}})
    if r.connections is not None:
        ex.append({"set": {"op": "add", "elem": key, "set": "@" + set_name, "stmt": [
            {"ct count": {"val": r.connections, "inv": True}}]}})
    ex.append({"counter": None})
    if r.action == "synproxy":
        mss, wscale, ts, sack = r.synproxy
        opts: dict = {}
        if mss is not None:
            opts["mss"] = mss
        if wscale is not None:
            opts["wscale"] = wscale
        flags = [f for f, on in (("timestamp", ts), ("sack-perm", sack)) if on]
        if flags:
            opts["flags"] = flags
        ex.append({"synproxy": opts})
    elif r.action == "pass":
        ex.append({"accept": None})
    else:
        ex.append({"drop": None})
    return ex


def _families(r: RStateful) -> list[int | None]:
    fams = {4, 6}
    restricted = False
    for nets in (r.src, r.dst):
        if nets:
            fams &= {x.version for x in nets}
            restricted = True
    if restricted or r.rate or r.connections:
        return sorted(fams)
    return [None]


def build_nft(rules: list[RStateful], mode: str) -> dict:
    doc = _build_enforce(rules)
    return monitor_nft(doc) if mode == "monitor" else doc


DROPPING = ("drop", "reject")


def monitor_nft(doc: dict) -> dict:
    """The same table counting instead of dropping: every rule keeps its matches and
    counter but loses its drop/reject verdict; synproxy (which answers for the port, so
    it cannot only watch) is left out with its prerouting chain. Idempotent."""
    cmds = doc.get("nftables", [])
    rules = [c["add"]["rule"] for c in cmds if "rule" in c.get("add", {})]
    synproxy = {r.get("comment") for r in rules if r["chain"] == "prerouting"}
    out = []
    for c in cmds:
        add = c.get("add", {})
        if add.get("chain", {}).get("name") == "prerouting":
            continue
        rule = add.get("rule")
        if rule is not None:
            if rule["chain"] == "prerouting" or rule.get("comment") in synproxy:
                continue
            c = {"add": {"rule": {**rule, "expr": [e for e in rule["expr"] if not (
                isinstance(e, dict) and set(e) & set(DROPPING))]}}}
        out.append(c)
    return {**doc, "nftables": out}


def _build_enforce(rules: list[RStateful]) -> dict:
    cmds: list[dict] = [
        {"metainfo": {"json_schema_version": 1}},
        {"add": {"table": dict(TABLE)}},
        {"delete": {"table": dict(TABLE)}},
        {"add": {"table": dict(TABLE)}},
        {"add": {"chain": {**_REF, "name": "input", "type": "filter", "hook": "input",
                           "prio": 0, "policy": "accept"}}},
    ]
    synproxies = [r for r in rules if r.action == "synproxy"]
    if synproxies:
        cmds.append({"add": {"chain": {**_REF, "name": "prerouting", "type": "filter",
                                       "hook": "prerouting", "prio": -300, "policy": "accept"}}})
    body: list[dict] = []
    for i, r in enumerate(rules):
        comment = format_stateful(r.node)[:120]
        for fam in _families(r):
            set_name = None
            if r.rate is not None or r.connections is not None:
                set_name = f"{'rate' if r.rate else 'conn'}{i}_v{fam}"
                s = {**_REF, "name": set_name, "type": "ipv4_addr" if fam == 4 else "ipv6_addr",
                     "size": 65535}
                if r.rate is not None:
                    s["flags"] = ["timeout"]
                    s["timeout"] = SET_TIMEOUT_S[r.rate[1]]
                cmds.append({"add": {"set": s}})
            exprs = _rule_exprs(r, fam if fam is not None else 4, set_name)
            if fam is None:
                exprs = [e for e in exprs]
            body.append({"add": {"rule": {**_REF, "chain": "input", "comment": comment,
                                          "expr": exprs}}})
        if r.action == "synproxy":
            pre = [e for e in _rule_exprs(r, 4, None)
                   if "match" in e and "ct" not in e["match"]["left"]]
            cmds.append({"add": {"rule": {**_REF, "chain": "prerouting", "comment": comment,
                                          "expr": pre + [_match(_payload("tcp", "flags"), "syn", "in"),
                                                         {"notrack": None}]}}})
            after = [e for e in pre] + [_match({"ct": {"key": "state"}}, "invalid", "in"),
                                        {"counter": None}, {"drop": None}]
            body.append({"add": {"rule": {**_REF, "chain": "input", "comment": comment,
                                          "expr": after}}})
    return {"nftables": cmds + body}

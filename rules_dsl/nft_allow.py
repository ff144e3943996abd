"""What an nftables document from the compiler (rules_dsl.nft) can hold, as an allowlist.

    check_nft_document(doc) -> None        raises PlanError naming the first offence

The agent applies the hub's document; a compromised hub must not slip in a nat chain,
`dup`, `queue`, `fwd`, a `policy drop` input chain or a jump elsewhere. Every object kind,
chain (name, type, hook, priority, policy), set shape, match and statement below is one
that `nft.build_nft` / `nft.monitor_nft` write, taken from their constants, so the two
cannot drift apart; tests/rules_dsl/test_nft_allow.py checks that every example policy's
document passes and hostile ones fail. Pure; bounded (size and depth).
"""
from __future__ import annotations

from typing import Any

from .diagnostics import Diagnostic
from .errors import PlanError
from .nft import PROTO_NAMES, SET_TIMEOUT_S, TABLE
from .plan import MAX_RULES

# name -> (type, hook, prio, policy): the base chains the compiler writes, nothing else.
CHAINS = {
    "input": ("filter", "input", 0, "accept"),
    "prerouting": ("filter", "prerouting", -300, "accept"),
}
SET_TYPES = ("ipv4_addr", "ipv6_addr")
SET_MAX_SIZE = 65535
MAX_COMMANDS = 8 * MAX_RULES + 16     # a stateful rule gives at most a few commands
MAX_EXPRS = 32
MAX_COMMENT = 120
PAYLOADS = {"ip": ("saddr", "daddr"), "ip6": ("saddr", "daddr"), "tcp": ("sport", "dport", "flags"),
            "udp": ("sport", "dport"), "th": ("sport", "dport")}
CT_STATES = ("new", "established", "related", "invalid", "untracked")
TCP_FLAGS = ("syn",)
VERDICTS = ("accept", "drop")
LIMIT_UNITS = tuple(SET_TIMEOUT_S)

_REF_KEYS = {"family", "table"}


class _Refused(Exception):
    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path, self.message = path, message


def check_nft_document(doc: Any) -> None:
    """Raises PlanError unless `doc` is a document the compiler could have written."""
    try:
        _document(doc)
    except _Refused as exc:
        raise PlanError([Diagnostic("error", "<nft>", 0, 0, f"{exc.path}: {exc.message}")]) from None


def _need(ok: bool, path: str, message: str) -> None:
    if not ok:
        raise _Refused(path, message)


def _keys(obj: Any, path: str, required: set, optional: set = frozenset()) -> dict:
    _need(isinstance(obj, dict), path, "expected an object")
    extra = set(obj) - required - optional
    _need(not extra, path, f"not allowed here: {', '.join(sorted(map(str, extra)))}")
    missing = required - set(obj)
    _need(not missing, path, f"missing: {', '.join(sorted(missing))}")
    return obj


def _ours(obj: dict, path: str) -> None:
    _need(obj.get("family") == TABLE["family"] and obj.get("table") == TABLE["name"], path,
          "only table inet bulwark")


def _document(doc: Any) -> None:
    _keys(doc, "$", {"nftables"})
    cmds = doc["nftables"]
    _need(isinstance(cmds, list), "$.nftables", "expected a list")
    _need(len(cmds) <= MAX_COMMANDS, "$.nftables", f"more than {MAX_COMMANDS} commands")
    chains: set[str] = set()
    sets: set[str] = set()
    for i, cmd in enumerate(cmds):
        path = f"$.nftables[{i}]"
        _need(isinstance(cmd, dict) and len(cmd) == 1, path, "expected one command object")
        (verb, body), = cmd.items()
        if verb == "metainfo":
            _keys(body, path + ".metainfo", set(), {"json_schema_version", "version",
                                                    "release_name"})
            continue
        _need(verb in ("add", "delete"), path, f"command {verb!r} is not one the compiler writes")
        _need(isinstance(body, dict) and len(body) == 1, path, "expected one object")
        (kind, obj), = body.items()
        path += f".{verb}.{kind}"
        if kind == "table":
            _need(obj == TABLE, path, "only table inet bulwark")
        elif verb == "delete":
            raise _Refused(path, "only the table is deleted")
        elif kind == "chain":
            chains.add(_chain(obj, path))
        elif kind == "set":
            sets.add(_set(obj, path))
        elif kind == "rule":
            _rule(obj, path, chains, sets)
        else:
            raise _Refused(path, f"object kind {kind!r} is not one the compiler writes")


def _chain(obj: Any, path: str) -> str:
    _keys(obj, path, _REF_KEYS | {"name", "type", "hook", "prio", "policy"})
    _ours(obj, path)
    name = obj["name"]
    _need(name in CHAINS, path, f"chain {name!r} is not one the compiler writes")
    got = (obj["type"], obj["hook"], obj["prio"], obj["policy"])
    _need(got == CHAINS[name], path, f"chain {name} must be type/hook/prio/policy "
          f"{'/'.join(map(str, CHAINS[name]))}, not {'/'.join(map(str, got))}")
    return name


def _set(obj: Any, path: str) -> str:
    _keys(obj, path, _REF_KEYS | {"name", "type", "size"}, {"flags", "timeout"})
    _ours(obj, path)
    _need(isinstance(obj["name"], str) and obj["name"].isidentifier(), path, "bad set name")
    _need(obj["type"] in SET_TYPES, path, f"set type {obj['type']!r} is not allowed")
    size = obj["size"]
    _need(type(size) is int and 0 < size <= SET_MAX_SIZE, path, f"size is 1..{SET_MAX_SIZE}")
    _need(obj.get("flags", ["timeout"]) == ["timeout"], path, "only the timeout flag")
    if "timeout" in obj:
        _need(obj["timeout"] in SET_TIMEOUT_S.values(), path, "timeout is not one of the compiler's")
    return obj["name"]


def _rule(obj: Any, path: str, chains: set, sets: set) -> None:
    _keys(obj, path, _REF_KEYS | {"chain", "expr"}, {"comment"})
    _ours(obj, path)
    _need(obj["chain"] in chains, path, f"chain {obj['chain']!r} was not added before")
    comment = obj.get("comment", "")
    _need(isinstance(comment, str) and len(comment) <= MAX_COMMENT, path + ".comment",
          f"a string of at most {MAX_COMMENT} characters")
    exprs = obj["expr"]
    _need(isinstance(exprs, list) and 0 < len(exprs) <= MAX_EXPRS, path + ".expr",
          f"1..{MAX_EXPRS} expressions")
    verdicts = 0
    for j, e in enumerate(exprs):
        p = f"{path}.expr[{j}]"
        _need(isinstance(e, dict) and len(e) == 1, p, "expected one statement")
        (stmt, arg), = e.items()
        if stmt == "match":
            _match(arg, p)
        elif stmt in ("counter", "notrack"):
            _need(arg is None, p, f"{stmt} takes no arguments")
        elif stmt in VERDICTS:
            _need(arg is None, p, f"{stmt} takes no arguments")
            verdicts += 1
        elif stmt == "synproxy":
            _synproxy(arg, p)
        elif stmt == "set":
            _set_stmt(arg, p, sets)
        else:
            raise _Refused(p, f"statement {stmt!r} is not one the compiler writes")
        _need(verdicts <= 1 and (stmt in VERDICTS or not verdicts), p,
              "nothing may follow the verdict")
    _need(obj["chain"] != "prerouting" or "notrack" in exprs[-1], path,
          "the prerouting chain only untracks synproxy's SYNs")


def _match(m: Any, path: str) -> None:
    _keys(m, path, {"op", "left", "right"})
    left, right, op = m["left"], m["right"], m["op"]
    _need(isinstance(left, dict) and len(left) == 1, path + ".left", "expected one operand")
    (kind, arg), = left.items()
    if kind == "payload":
        _keys(arg, path + ".left.payload", {"protocol", "field"})
        fields = PAYLOADS.get(arg["protocol"], ())
        _need(arg["field"] in fields, path + ".left", "payload field is not one the compiler matches")
        if arg["field"] == "flags":
            _need(op == "in" and right in TCP_FLAGS, path, "only 'tcp flags syn'")
            return
        _need(op == "==", path, f"operator {op!r} is not allowed here")
        if arg["field"] in ("saddr", "daddr"):
            _values(right, path + ".right", _address)
        else:
            _values(right, path + ".right", _port)
    elif kind == "meta":
        _need(arg == {"key": "l4proto"}, path + ".left", "only meta l4proto")
        _need(op == "==", path, f"operator {op!r} is not allowed here")
        _values(right, path + ".right", _proto)
    elif kind == "ct":
        _need(arg == {"key": "state"}, path + ".left", "only ct state")
        _need(op == "in", path, f"operator {op!r} is not allowed here")
        states = right if isinstance(right, list) else [right]
        _need(bool(states) and all(s in CT_STATES for s in states), path + ".right",
              "unknown ct state")
    else:
        raise _Refused(path + ".left", f"{kind!r} is not matched by the compiler")


def _values(right: Any, path: str, one) -> None:
    if isinstance(right, dict) and set(right) == {"set"}:
        items = right["set"]
        _need(isinstance(items, list) and 0 < len(items) <= 4096, path, "a set of 1..4096 values")
        for k, v in enumerate(items):
            one(v, f"{path}.set[{k}]")
    else:
        one(right, path)


def _address(v: Any, path: str) -> None:
    import ipaddress
    try:
        if isinstance(v, dict):
            _keys(v, path, {"prefix"})
            _keys(v["prefix"], path + ".prefix", {"addr", "len"})
            _need(type(v["prefix"]["len"]) is int, path, "prefix length is an integer")
            ipaddress.ip_network(f"{v['prefix']['addr']}/{v['prefix']['len']}")
        else:
            _need(isinstance(v, str), path, "an address")
            ipaddress.ip_address(v)
    except ValueError as exc:
        raise _Refused(path, f"not an address or prefix ({exc})") from None


def _port(v: Any, path: str) -> None:
    if isinstance(v, dict):
        _keys(v, path, {"range"})
        r = v["range"]
        _need(isinstance(r, list) and len(r) == 2, path, "a range is [lo, hi]")
        for x in r:
            _port(x, path)
        return
    _need(type(v) is int and 0 <= v <= 65535, path, "a port is 0..65535")


def _proto(v: Any, path: str) -> None:
    _need(v in PROTO_NAMES.values() or (type(v) is int and 0 <= v <= 255), path,
          "a protocol name or number")


def _synproxy(arg: Any, path: str) -> None:
    _keys(arg, path, set(), {"mss", "wscale", "flags"})
    _need(type(arg.get("mss", 536)) is int and 536 <= arg.get("mss", 536) <= 65535, path, "mss is 536..65535")
    _need(type(arg.get("wscale", 0)) is int and 0 <= arg.get("wscale", 0) <= 14, path, "wscale is 0..14")
    flags = arg.get("flags", [])
    _need(isinstance(flags, list) and set(flags) <= {"timestamp", "sack-perm"}, path, "unknown flag")


def _set_stmt(arg: Any, path: str, sets: set) -> None:
    _keys(arg, path, {"op", "elem", "set", "stmt"})
    _need(arg["op"] in ("update", "add"), path, "only set update and add")
    _need(isinstance(arg["elem"], dict) and len(arg["elem"]) == 1 and "payload" in arg["elem"],
          path + ".elem", "the key is the source address")
    _need(arg["elem"]["payload"] in ({"protocol": "ip", "field": "saddr"},
                                     {"protocol": "ip6", "field": "saddr"}),
          path + ".elem", "the key is the source address")
    _need(isinstance(arg["set"], str) and arg["set"][1:] in sets and arg["set"][:1] == "@",
          path + ".set", "a set added before")
    stmts = arg["stmt"]
    _need(isinstance(stmts, list) and len(stmts) == 1 and isinstance(stmts[0], dict)
          and len(stmts[0]) == 1, path + ".stmt", "one limit or ct count")
    (kind, body), = stmts[0].items()
    if kind == "limit":
        _keys(body, path + ".stmt", {"rate", "per", "burst", "inv"})
        _need(body["per"] in LIMIT_UNITS and body["inv"] is True, path + ".stmt", "bad limit")
        _need(all(type(body[k]) is int and 0 < body[k] < 2**32 for k in ("rate", "burst")),
              path + ".stmt", "rate and burst are positive integers")
    elif kind == "ct count":
        _keys(body, path + ".stmt", {"val", "inv"})
        _need(type(body["val"]) is int and 0 < body["val"] < 2**32 and body["inv"] is True,
              path + ".stmt", "bad ct count")
    else:
        raise _Refused(path + ".stmt", f"{kind!r} is not one the compiler writes")

"""The Plan: the one contract between hub and agent (schema in docs/plan.md).

A Plan is data: frozen, comparable, hashable, serialised canonically (sorted keys, no
whitespace, ASCII) so the same policy gives the same bytes and the same sha256 digest.
`Plan.from_json` validates everything an agent relies on and raises `PlanError` otherwise.
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any

from .diagnostics import Diagnostic
from .errors import PlanError
from .packet import LENGTH_MAX

SCHEMA_VERSION = 2
READS = (1, 2)               # schema 1: one limit per rule, `rate_profile`
MAX_RULES = 1024
MAX_ADDR_SETS = 64
MAX_RATE_PROFILES = 256
MAX_RULE_LIMITS = 4          # stacked limits per rule (GUARD_MAX_LIMITS)
U32 = 2**32 - 1
MAX_BLOCK_S = 366 * 86400

MODES = ("enforce", "monitor")
VERDICTS = ("pass", "drop")
ACTIONS = ("pass", "drop", "limit")
FRAGMENT = ("any", "yes", "no")
RATE_UNITS = ("packets", "bytes")
KEYS = ("src", "dst", "global")

Range = tuple[int, int]


@dataclass(frozen=True)
class AddrSet:
    """An address set as the data plane holds it: LPM entries split by family and kind."""
    id: int
    name: str
    v4_hosts: tuple[str, ...] = ()
    v4_prefixes: tuple[str, ...] = ()
    v6_hosts: tuple[str, ...] = ()
    v6_prefixes: tuple[str, ...] = ()
    lists: tuple[str, ...] = ()   # hub-managed lists whose entries are members too


@dataclass(frozen=True)
class RateProfile:
    id: int
    unit: str          # packets | bytes
    rate: int          # units per second
    burst: int         # units
    key: str           # src | dst | global
    v4_prefix: int     # key mask for IPv4 (ignored for global)
    v6_prefix: int
    block_s: int       # 0 = no block


@dataclass(frozen=True)
class XdpRule:
    action: str                            # pass | drop | limit
    src: int | None = None                 # address set id, None = any
    dst: int | None = None
    proto: tuple[int, ...] | None = None
    sport: tuple[Range, ...] | None = None
    dport: tuple[Range, ...] | None = None
    tcp_flags: tuple[Range, ...] | None = None   # (mask, value) pairs, any-of
    length: Range | None = None
    fragment: str = "any"
    icmp_type: tuple[int, ...] | None = None
    ttl: Range | None = None
    rate_profiles: tuple[int, ...] = ()    # stacked limits, in order; only with limit
    text: str = ""                         # the rule in canonical source form


@dataclass(frozen=True)
class XdpPlan:
    mode: str
    default: str
    malformed: str
    sets: tuple[AddrSet, ...] = ()
    rate_profiles: tuple[RateProfile, ...] = ()
    rules: tuple[XdpRule, ...] = ()


@dataclass(frozen=True)
class Plan:
    name: str
    xdp: XdpPlan
    nft_json: str = '{"nftables":[]}'      # canonical JSON of the libnftables document
    schema_version: int = SCHEMA_VERSION
    _cache: dict = field(default_factory=dict, compare=False, repr=False, hash=False)

    @property
    def nft(self) -> dict:
        """The libnftables JSON document (a fresh copy: the Plan stays immutable)."""
        return json.loads(self.nft_json)

    def to_dict(self) -> dict:
        x = self.xdp
        return {
            "schema_version": self.schema_version,
            "name": self.name,
            "xdp": {
                "mode": x.mode, "default": x.default, "malformed": x.malformed,
                "sets": [{"id": s.id, "name": s.name, "v4_hosts": list(s.v4_hosts),
                          "v4_prefixes": list(s.v4_prefixes), "v6_hosts": list(s.v6_hosts),
                          "v6_prefixes": list(s.v6_prefixes), "lists": list(s.lists)}
                         for s in x.sets],
                "rate_profiles": [{"id": p.id, "unit": p.unit, "rate": p.rate, "burst": p.burst,
                                   "key": p.key, "v4_prefix": p.v4_prefix,
                                   "v6_prefix": p.v6_prefix, "block_s": p.block_s}
                                  for p in x.rate_profiles],
                "rules": [_rule_dict(r, self.schema_version) for r in x.rules],
            },
            "nft": json.loads(self.nft_json),
        }

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, no whitespace, ASCII only."""
        if "json" not in self._cache:
            self._cache["json"] = canonical_json(self.to_dict())
        return self._cache["json"]

    @property
    def digest(self) -> str:
        """sha256 hex of `to_json()`: the Plan's name in deployments."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @classmethod
    def from_json(cls, text: str | bytes) -> Plan:
        """Validate and load a Plan document. Raises `PlanError` when it breaks the schema."""
        try:
            doc = json.loads(text)
        except (ValueError, TypeError, RecursionError) as exc:
            raise _err("$", f"not JSON: {exc}") from None
        return _load(doc)


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


def _rule_dict(r: XdpRule, version: int) -> dict:
    def ranges(v):
        return None if v is None else [list(x) for x in v]
    return {"action": r.action, "src": r.src, "dst": r.dst,
            "proto": None if r.proto is None else list(r.proto),
            "sport": ranges(r.sport), "dport": ranges(r.dport),
            "tcp_flags": ranges(r.tcp_flags),
            "length": None if r.length is None else list(r.length),
            "fragment": r.fragment,
            "icmp_type": None if r.icmp_type is None else list(r.icmp_type),
            "ttl": None if r.ttl is None else list(r.ttl),
            **_limit_field(r.rate_profiles, version), "text": r.text}


def _limit_field(ids: tuple[int, ...], version: int) -> dict:
    """Schema 1 names one profile (or null); 2 lists them. A schema-1 Plan keeps its
    form, so its bytes and digest survive a load by a newer agent."""
    if version == 1:
        return {"rate_profile": ids[0] if ids else None}
    return {"rate_profiles": list(ids)}


# ---- validation -------------------------------------------------------------------------

def _err(path: str, message: str) -> PlanError:
    return PlanError([Diagnostic("error", "<plan>", 0, 0, f"{path}: {message}")])


def _obj(v, path, keys) -> dict:
    if not isinstance(v, dict):
        raise _err(path, "expected an object")
    missing, extra = set(keys) - set(v), set(v) - set(keys)
    if missing:
        raise _err(path, f"missing {sorted(missing)}")
    if extra:
        raise _err(path, f"unknown {sorted(extra)}")
    return v


def _int(v, path, lo, hi) -> int:
    if type(v) is not int or not lo <= v <= hi:
        raise _err(path, f"expected an integer in {lo}..{hi}")
    return v


def _enum(v, path, allowed) -> str:
    if v not in allowed or not isinstance(v, str):
        raise _err(path, f"expected one of {list(allowed)}")
    return v


def _str(v, path) -> str:
    if not isinstance(v, str) or len(v) > 4096:
        raise _err(path, "expected a string")
    return v


def _list(v, path, maximum=1 << 20) -> list:
    if not isinstance(v, list) or len(v) > maximum:
        raise _err(path, "expected an array")
    return v


def _opt(v, path, fn):
    return None if v is None else fn(v, path)


def _ranges(v, path, hi, count=64) -> tuple[Range, ...]:
    out = []
    for i, r in enumerate(_list(v, path, count)):
        r = _list(r, f"{path}[{i}]", 2)
        if len(r) != 2:
            raise _err(f"{path}[{i}]", "expected [lo, hi]")
        lo, h = _int(r[0], f"{path}[{i}][0]", 0, hi), _int(r[1], f"{path}[{i}][1]", 0, hi)
        if lo > h:
            raise _err(f"{path}[{i}]", "lo > hi")
        out.append((lo, h))
    if not out:
        raise _err(path, "empty: use null for any")
    return tuple(out)


def _range(v, path, hi) -> Range:
    return _ranges([v], path, hi)[0]


def _addrs(v, path, version, host) -> tuple[str, ...]:
    out = []
    for i, a in enumerate(_list(v, path, 1 << 24)):
        p = f"{path}[{i}]"
        try:
            net = ipaddress.ip_network(_str(a, p))
        except ValueError:
            raise _err(p, "not an address or prefix with host bits clear") from None
        full = net.max_prefixlen
        if net.version != version or (net.prefixlen == full) != host:
            raise _err(p, "in the wrong family or kind")
        if str(net if not host else net.network_address) != a:
            raise _err(p, "not in canonical form")
        out.append(net)
    if out != sorted(out):
        raise _err(path, "not sorted")
    return tuple(v)


def _load(doc) -> Plan:
    d = _obj(doc, "$", ["schema_version", "name", "xdp", "nft"])
    version = d["schema_version"]
    if type(version) is not int or version not in READS:
        raise _err("$.schema_version", f"this agent reads schemas {list(READS)}")
    name = _str(d["name"], "$.name")
    x = _obj(d["xdp"], "$.xdp", ["mode", "default", "malformed", "sets", "rate_profiles",
                                  "rules"])
    sets = []
    for i, s in enumerate(_list(x["sets"], "$.xdp.sets", MAX_ADDR_SETS)):
        p = f"$.xdp.sets[{i}]"
        s = _obj(s, p, ["id", "name", "v4_hosts", "v4_prefixes", "v6_hosts", "v6_prefixes",
                        "lists"])
        if s["id"] != i:
            raise _err(p + ".id", f"expected {i}")
        sets.append(AddrSet(i, _str(s["name"], p + ".name"),
                            _addrs(s["v4_hosts"], p + ".v4_hosts", 4, True),
                            _addrs(s["v4_prefixes"], p + ".v4_prefixes", 4, False),
                            _addrs(s["v6_hosts"], p + ".v6_hosts", 6, True),
                            _addrs(s["v6_prefixes"], p + ".v6_prefixes", 6, False),
                            tuple(_str(n, p + ".lists") for n in _list(s["lists"], p + ".lists", 64))))
    profiles = []
    for i, r in enumerate(_list(x["rate_profiles"], "$.xdp.rate_profiles", MAX_RATE_PROFILES)):
        p = f"$.xdp.rate_profiles[{i}]"
        r = _obj(r, p, ["id", "unit", "rate", "burst", "key", "v4_prefix", "v6_prefix",
                        "block_s"])
        if r["id"] != i:
            raise _err(p + ".id", f"expected {i}")
        profiles.append(RateProfile(
            i, _enum(r["unit"], p + ".unit", RATE_UNITS), _int(r["rate"], p + ".rate", 1, U32),
            _int(r["burst"], p + ".burst", 1, U32), _enum(r["key"], p + ".key", KEYS),
            _int(r["v4_prefix"], p + ".v4_prefix", 0, 32),
            _int(r["v6_prefix"], p + ".v6_prefix", 0, 128),
            _int(r["block_s"], p + ".block_s", 0, MAX_BLOCK_S)))
    rules = []
    for i, r in enumerate(_list(x["rules"], "$.xdp.rules", MAX_RULES)):
        p = f"$.xdp.rules[{i}]"
        lim_key = "rate_profile" if version == 1 else "rate_profiles"
        r = _obj(r, p, ["action", "src", "dst", "proto", "sport", "dport", "tcp_flags",
                        "length", "fragment", "icmp_type", "ttl", lim_key, "text"])
        action = _enum(r["action"], p + ".action", ACTIONS)
        pid = lambda v, q: _int(v, q, 0, len(profiles) - 1)  # noqa: E731
        if version == 1:
            prof = () if r[lim_key] is None else (pid(r[lim_key], p + "." + lim_key),)
        else:
            prof = tuple(pid(v, f"{p}.{lim_key}[{j}]") for j, v in
                         enumerate(_list(r[lim_key], p + "." + lim_key, MAX_RULE_LIMITS)))
        if (action == "limit") != bool(prof):
            raise _err(p, "a 'limit' rule, and only it, names rate profiles")
        sid = lambda v, q: _int(v, q, 0, len(sets) - 1)  # noqa: E731
        nums = lambda hi: (lambda v, q: tuple(_int(e, f"{q}[{j}]", 0, hi)  # noqa: E731
                                              for j, e in enumerate(_list(v, q, 256))) or _empty(q))
        rules.append(XdpRule(
            action, _opt(r["src"], p + ".src", sid), _opt(r["dst"], p + ".dst", sid),
            _opt(r["proto"], p + ".proto", nums(255)),
            _opt(r["sport"], p + ".sport", lambda v, q: _ranges(v, q, 65535)),
            _opt(r["dport"], p + ".dport", lambda v, q: _ranges(v, q, 65535)),
            _opt(r["tcp_flags"], p + ".tcp_flags", _flag_pairs),
            _opt(r["length"], p + ".length", lambda v, q: _range(v, q, LENGTH_MAX)),
            _enum(r["fragment"], p + ".fragment", FRAGMENT),
            _opt(r["icmp_type"], p + ".icmp_type", nums(255)),
            _opt(r["ttl"], p + ".ttl", lambda v, q: _range(v, q, 255)),
            prof, _str(r["text"], p + ".text")))
    xdp = XdpPlan(_enum(x["mode"], "$.xdp.mode", MODES), _enum(x["default"], "$.xdp.default", VERDICTS),
                  _enum(x["malformed"], "$.xdp.malformed", VERDICTS), tuple(sets),
                  tuple(profiles), tuple(rules))
    nft = _obj(d["nft"], "$.nft", ["nftables"])
    for i, cmd in enumerate(_list(nft["nftables"], "$.nft.nftables")):
        _check_nft_cmd(cmd, f"$.nft.nftables[{i}]")
    return Plan(name, xdp, canonical_json(nft), version)


def _flag_pairs(v, path) -> tuple[Range, ...]:
    out = []
    for i, r in enumerate(_list(v, path, 16)):
        r = _list(r, f"{path}[{i}]", 2)
        if len(r) != 2:
            raise _err(f"{path}[{i}]", "expected [mask, value]")
        m, val = _int(r[0], f"{path}[{i}][0]", 0, 255), _int(r[1], f"{path}[{i}][1]", 0, 255)
        if val & ~m:
            raise _err(f"{path}[{i}]", "value has bits outside the mask")
        out.append((m, val))
    if not out:
        raise _err(path, "empty: use null for any")
    return tuple(out)


def _empty(q):
    raise _err(q, "empty: use null for any")


def _check_nft_cmd(cmd, path) -> None:
    """The nft part may only touch table inet bulwark."""
    if not isinstance(cmd, dict) or len(cmd) != 1:
        raise _err(path, "expected one command object")
    (verb, body), = cmd.items()
    if verb == "metainfo":
        return
    if verb not in ("add", "delete", "flush") or not isinstance(body, dict) or len(body) != 1:
        raise _err(path, "only add, delete and flush commands are allowed")
    (kind, obj), = body.items()
    if kind not in ("table", "chain", "rule", "set") or not isinstance(obj, dict):
        raise _err(path, "only tables, chains, rules and sets are allowed")
    table = obj.get("name") if kind == "table" else obj.get("table")
    if obj.get("family") != "inet" or table != "bulwark":
        raise _err(path, "the nft part may only touch table inet bulwark")

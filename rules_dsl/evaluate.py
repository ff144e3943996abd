"""The reference evaluator: what a Plan means, packet by packet. The XDP program agrees.

    evaluate(plan, packet, state, now_ns) -> (Decision, new_state)

Pure: `state` (rate-limit buckets) is an immutable `State`; the new one is returned.
Order of decision, first that applies:
  1. malformed packet  → the Plan's `malformed` verdict (rule None)
  2. not IP (l3 None)  → pass, never counted (rule None)
  3. the first rule whose every field matches → its action
  4. the Plan's default verdict (rule None)
In monitor mode the verdict is always pass and `would_drop` says what enforce would do;
buckets are updated the same way in both modes.

A limited rule's limits (stacked, ≤ 4) are consulted in order: a limit that admits is
charged there and then, the first that refuses drops the packet and the later ones are
neither consulted nor charged (the earlier ones stay charged). So each step touches one
bucket, which the XDP program can do without a lock spanning buckets.

Token bucket (all u64 integer arithmetic; NS = 10**9), per (rule index, limit index, key):
  bucket = (tokens, last_ns, blocked_until_ns); a new key starts (burst*NS, now, 0)
  if blocked_until_ns > now:            drop, bucket unchanged
  elapsed = now - last_ns if now > last_ns else 0
  elapsed = min(elapsed, burst*NS // rate + 1)      # bounds elapsed*rate: no overflow
  tokens  = min(tokens + elapsed*rate, burst*NS);  last_ns = max(last_ns, now)
  cost    = NS (packets) or NS*length (bytes)
  tokens >= cost → tokens -= cost, pass;  else drop and, if block_s > 0,
                   blocked_until_ns = now + block_s*NS
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from .packet import Packet
from .plan import Plan, XdpRule

NS = 1_000_000_000


@dataclass(frozen=True)
class Bucket:
    tokens: int
    last_ns: int
    blocked_until_ns: int = 0


class State(Mapping):
    """Immutable mapping (rule index, limit index, key) → Bucket. `with_bucket` returns a new State."""

    __slots__ = ("_d", "_hash")

    def __init__(self, items: Mapping | Iterable = ()):
        self._d = dict(items)
        self._hash = None

    def __getitem__(self, k):
        return self._d[k]

    def __iter__(self) -> Iterator:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._d.items()))
        return self._hash

    def __repr__(self) -> str:
        return f"State({self._d!r})"

    def with_bucket(self, key, bucket: Bucket) -> State:
        d = dict(self._d)
        d[key] = bucket
        return State(d)


EMPTY = State()


@dataclass(frozen=True)
class Decision:
    verdict: str            # what happens to the packet: pass | drop
    rule: int | None        # index of the deciding rule; None = default, malformed or not IP
    would_drop: bool        # what enforce mode does: equal to verdict == "drop" there
    reason: str             # non-ip | malformed | rule | default | limit | over-limit | blocked


class AddressIndex:
    """Membership in a set of prefixes: one hash lookup per distinct prefix length."""

    def __init__(self, nets: Iterable):
        self._by_len: dict[tuple[int, int], set[int]] = {}
        for net in nets:
            if not isinstance(net, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
                net = ipaddress.ip_network(net)
            bits = net.max_prefixlen
            key = (net.version, net.prefixlen)
            self._by_len.setdefault(key, set()).add(int(net.network_address) >> (bits - net.prefixlen))
        self._lens = {4: sorted(l for v, l in self._by_len if v == 4),
                      6: sorted(l for v, l in self._by_len if v == 6)}

    def __contains__(self, addr) -> bool:
        v = addr.version
        bits = 32 if v == 4 else 128
        a = int(addr)
        for plen in self._lens[v]:
            if (a >> (bits - plen)) in self._by_len[(v, plen)]:
                return True
        return False


class _Compiled:
    def __init__(self, plan: Plan):
        x = plan.xdp
        self.sets = [AddressIndex(list(s.v4_hosts) + list(s.v4_prefixes) + list(s.v6_hosts)
                                  + list(s.v6_prefixes)) for s in x.sets]
        self.set_lists = [s.lists for s in x.sets]
        self.rules = x.rules
        self.profiles = x.rate_profiles
        self.lists: dict[int, tuple[object, dict[str, AddressIndex]]] = {}

    def list_index(self, lists: Mapping | None) -> dict[str, AddressIndex]:
        if not lists:
            return {}
        cached = self.lists.get(id(lists))
        if cached is not None and cached[0] is lists:
            return cached[1]
        idx = {k: v if isinstance(v, AddressIndex) else AddressIndex(v) for k, v in lists.items()}
        self.lists = {id(lists): (lists, idx)}
        return idx


def _compiled(plan: Plan) -> _Compiled:
    c = plan._cache.get("eval")
    if c is None:
        c = plan._cache["eval"] = _Compiled(plan)
    return c


def _in_ranges(v, ranges) -> bool:
    return v is not None and any(lo <= v <= hi for lo, hi in ranges)


def rule_matches(c: _Compiled, r: XdpRule, p: Packet, lists: dict) -> bool:
    def in_set(sid, addr):
        if addr in c.sets[sid]:
            return True
        return any(name in lists and addr in lists[name] for name in c.set_lists[sid])
    if r.proto is not None and p.proto not in r.proto:
        return False
    if r.src is not None and not in_set(r.src, p.src):
        return False
    if r.dst is not None and not in_set(r.dst, p.dst):
        return False
    if r.sport is not None and not _in_ranges(p.sport, r.sport):
        return False
    if r.dport is not None and not _in_ranges(p.dport, r.dport):
        return False
    if r.tcp_flags is not None and (p.tcp_flags is None or
                                    not any(p.tcp_flags & m == v for m, v in r.tcp_flags)):
        return False
    if r.length is not None and not r.length[0] <= p.match_length <= r.length[1]:
        return False
    if r.fragment != "any" and p.is_fragment != (r.fragment == "yes"):
        return False
    if r.icmp_type is not None and p.icmp_type not in r.icmp_type:
        return False
    if r.ttl is not None and (p.ttl is None or not r.ttl[0] <= p.ttl <= r.ttl[1]):
        return False
    return True


def bucket_key(profile, p: Packet):
    if profile.key == "global":
        return ("global",)
    addr = p.src if profile.key == "src" else p.dst
    plen = profile.v4_prefix if addr.version == 4 else profile.v6_prefix
    bits = 32 if addr.version == 4 else 128
    return (profile.key, addr.version, (int(addr) >> (bits - plen)) << (bits - plen) if plen else 0)


def token_bucket(profile, bucket: Bucket | None, length: int, now: int) -> tuple[bool, Bucket, str]:
    """One packet through one bucket: (passes, new bucket, reason)."""
    cap = profile.burst * NS
    if bucket is None:
        bucket = Bucket(cap, now, 0)
    if bucket.blocked_until_ns > now:
        return False, bucket, "blocked"
    elapsed = now - bucket.last_ns if now > bucket.last_ns else 0
    elapsed = min(elapsed, cap // profile.rate + 1)
    tokens = min(bucket.tokens + elapsed * profile.rate, cap)
    last = max(bucket.last_ns, now)
    cost = NS if profile.unit == "packets" else NS * length
    if tokens >= cost:
        return True, Bucket(tokens - cost, last, bucket.blocked_until_ns), "limit"
    blocked = now + profile.block_s * NS if profile.block_s else bucket.blocked_until_ns
    return False, Bucket(tokens, last, blocked), "over-limit"


def _within_limits(c: _Compiled, i: int, r: XdpRule, p: Packet, state: State,
                   now: int) -> tuple[bool, str, State]:
    """A rule's stacked limits, in order: each admitting bucket is charged at once, the
    first refusal stops (later buckets untouched). One bucket per step, so the guard does
    the same with no lock across buckets."""
    reason = "limit"
    for j, pid in enumerate(r.rate_profiles):
        prof = c.profiles[pid]
        key = (i, j, bucket_key(prof, p))
        ok, bucket, reason = token_bucket(prof, state.get(key), p.length, now)
        if bucket != state.get(key):
            state = state.with_bucket(key, bucket)
        if not ok:
            return False, reason, state
    return True, reason, state


def evaluate(plan: Plan, packet: Packet, state: State | None = None, now_ns: int = 0, *,
             lists: Mapping | None = None) -> tuple[Decision, State]:
    """Decide one packet at time `now_ns`. `lists`: hub list name → prefixes (or an
    AddressIndex); a list not given is empty. Returns the decision and the new state."""
    state = EMPTY if state is None else state
    monitor = plan.xdp.mode == "monitor"

    def done(verdict, rule, reason, new_state=state):
        drop = verdict == "drop"
        return Decision("pass" if monitor else verdict, rule, drop, reason), new_state

    if packet.malformed:
        return done(plan.xdp.malformed, None, "malformed")
    if packet.l3 is None:
        return done("pass", None, "non-ip")
    c = _compiled(plan)
    idx = c.list_index(lists)
    for i, r in enumerate(c.rules):
        if not rule_matches(c, r, packet, idx):
            continue
        if r.action != "limit":
            return done(r.action, i, "rule")
        ok, reason, new_state = _within_limits(c, i, r, packet, state, now_ns)
        return done("pass" if ok else "drop", i, reason, new_state)
    return done(plan.xdp.default, None, "default")

"""The policy as typed, frozen syntax nodes: what `parse` returns.

Nodes keep what the author wrote (addresses as text, names unresolved) so the checker can
point at the exact token and the formatter can write it back; synonyms are normalised at
parse time (`/s` → `second`, `10m` → 600 s). Positions never take part in equality, so
`parse(fmt(policy)) == policy`.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Pos:
    line: int = 0
    col: int = 0
    end_line: int = 0
    end_col: int = 0


NOPOS = Pos()


def _pos():
    return field(default=NOPOS, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class Word:
    """An enumerated word (verdict, mode...) with where it was written."""
    value: str
    pos: Pos = _pos()


@dataclass(frozen=True)
class Addr:
    text: str
    pos: Pos = _pos()


@dataclass(frozen=True)
class SetRef:
    name: str
    pos: Pos = _pos()


@dataclass(frozen=True)
class ListRef:
    name: str
    pos: Pos = _pos()


@dataclass(frozen=True)
class PortRange:
    lo: int
    hi: int
    pos: Pos = _pos()


@dataclass(frozen=True)
class PortName:
    name: str
    pos: Pos = _pos()


@dataclass(frozen=True)
class Proto:
    value: str | int
    pos: Pos = _pos()


@dataclass(frozen=True)
class FlagCombo:
    """`value[/mask]`, each a `|`-joined tuple of flag names; mask None = same as value."""
    value: tuple[str, ...]
    mask: tuple[str, ...] | None = None
    pos: Pos = _pos()


@dataclass(frozen=True)
class Cmp:
    """`N` (op "="), `A-B` (op "-"), or `<N`, `<=N`, `>N`, `>=N`."""
    op: str
    a: int
    b: int | None = None
    pos: Pos = _pos()


@dataclass(frozen=True)
class IcmpType:
    value: str | int
    pos: Pos = _pos()


@dataclass(frozen=True)
class Key:
    kind: str                 # "src" | "dst" | "global"
    v4: int | None = None     # prefix length of the key, None = whole address
    v6: int | None = None
    pos: Pos = _pos()


@dataclass(frozen=True)
class Limit:
    rate: int
    unit: str                 # packets | bytes | kbytes | mbytes | gbytes
    per: str                  # second (the only one the data plane takes; checked)
    burst: int | None = None
    burst_unit: str | None = None
    key: Key | None = None
    block_s: int | None = None
    pos: Pos = _pos()


AddrItem = Addr | SetRef
PortItem = PortRange | PortName | SetRef


@dataclass(frozen=True)
class Rule:
    """A stateless rule: enforced by the XDP program, first match wins."""
    action: Word
    src: tuple[AddrItem, ...] | None = None
    dst: tuple[AddrItem, ...] | None = None
    proto: tuple[Proto, ...] | None = None
    sport: tuple[PortItem, ...] | None = None
    dport: tuple[PortItem, ...] | None = None
    flags: tuple[FlagCombo, ...] | None = None
    length: Cmp | None = None
    fragment: Word | None = None   # "yes" | "no"
    icmp_type: tuple[IcmpType, ...] | None = None
    ttl: Cmp | None = None
    limits: tuple[Limit, ...] = ()   # stacked: a packet passes within all of them
    pos: Pos = _pos()


@dataclass(frozen=True)
class CtRate:
    rate: int
    per: str                  # second | minute | hour | day
    burst: int | None = None
    pos: Pos = _pos()


@dataclass(frozen=True)
class StatefulRule:
    """A rule for the nftables stage: `pass`, `drop` or `synproxy`."""
    action: Word
    src: tuple[AddrItem, ...] | None = None
    dst: tuple[AddrItem, ...] | None = None
    proto: tuple[Proto, ...] | None = None
    sport: tuple[PortItem, ...] | None = None
    dport: tuple[PortItem, ...] | None = None
    ct_state: tuple[Word, ...] | None = None
    rate: CtRate | None = None
    connections: int | None = None
    mss: int | None = None
    wscale: int | None = None
    timestamp: bool = False
    sack_perm: bool = False
    pos: Pos = _pos()


SetItem = Addr | PortRange | PortName | ListRef


@dataclass(frozen=True)
class SetDecl:
    name: str
    items: tuple[SetItem, ...]
    pos: Pos = _pos()


@dataclass(frozen=True)
class TestList:
    name: str
    items: tuple[Addr, ...]
    pos: Pos = _pos()


@dataclass(frozen=True)
class PacketSpec:
    """A test packet. kind: "ip" | "non-ip" | "malformed"."""
    kind: str = "ip"
    proto: str | int | None = None
    src: str | None = None
    sport: int | None = None
    dst: str | None = None
    dport: int | None = None
    flags: tuple[str, ...] | None = None
    length: int | None = None
    ttl: int | None = None
    icmp_type: str | int | None = None
    fragment: str | None = None    # "first" | "later"
    pos: Pos = _pos()


@dataclass(frozen=True)
class Expect:
    verdict: Word
    packet: PacketSpec
    repeat: int | None = None
    at_ms: int | None = None
    pos: Pos = _pos()


@dataclass(frozen=True)
class Comment:
    line: int
    col: int
    text: str


@dataclass(frozen=True)
class Policy:
    name: Word | None = None
    default: Word | None = None
    mode: Word | None = None
    malformed: Word | None = None
    lockout_guard: Word | None = None
    sets: tuple[SetDecl, ...] = ()
    rules: tuple[Rule, ...] = ()
    stateful: tuple[StatefulRule, ...] = ()
    test_lists: tuple[TestList, ...] = ()
    expects: tuple[Expect, ...] = ()
    filename: str = field(default="<policy>", compare=False)
    source: str = field(default="", compare=False, repr=False)
    comments: tuple[Comment, ...] = field(default=(), compare=False, repr=False)

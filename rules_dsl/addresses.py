"""Addresses and prefixes of hub lists: the one definition of their text and binary forms.

Text (what the API accepts and shows, what the hub stores):
- accepted: `1.2.3.4`, `1.2.3.4/32`, `10.0.0.0/8`, `::1`, `::1/128`, uncompressed or
  mixed IPv6 (`0:0:0:0:0:0:0:1`, `::ffff:1.2.3.4`), surrounding blanks;
- refused: host bits set (`10.0.0.1/8`: a typo, not a wish), leading zeros in IPv4
  (`010.0.0.1` is octal to some tools), zone ids, lengths out of range;
- canonical: a bare address for a single host (/32, /128), `network/length` for a real
  prefix; IPv6 compressed as `ipaddress` writes it (what the hub stored before).

Binary (`Packed`, what travels from hub to agent and is persisted by the agent):
    b"BWA1", then four u32 LE counts (v4 hosts, v4 nets, v6 hosts, v6 nets), then the four
    tables in that order: hosts as big-endian address bytes (4 or 16 each), nets as the
    address bytes followed by the prefix length (one byte) — each table sorted, unique.
Host tables are exactly the keys of the guard's host hash maps, so a million hosts go
from the wire into the kernel without a Python object per entry (on the wire and on the
agent's disk: base64 of these bytes inside JSON, `to_wire`/`from_wire`); byte order is numeric
order, so membership is a binary search. Pure: no I/O.
"""
from __future__ import annotations

import array
import base64
import binascii
import bisect
import functools
import ipaddress
import socket
import struct
import sys
from collections.abc import Iterable, Iterator

from rules_dsl.errors import AddressError

MAGIC = b"BWA1"
_HEADER = struct.Struct("<4s4I")
TABLES = ("v4_hosts", "v4_nets", "v6_hosts", "v6_nets")
WIDTH = {"v4": 4, "v6": 16}
RECORD = {"v4_hosts": 4, "v4_nets": 5, "v6_hosts": 16, "v6_nets": 17}
_PTON4 = functools.partial(socket.inet_pton, socket.AF_INET)
_PTON6 = functools.partial(socket.inet_pton, socket.AF_INET6)

Value = tuple[str, bytes, int]  # (family "v4" | "v6", network address bytes, prefix length)


def parse(text: str) -> Value:
    """The value of an address or prefix in any accepted form.

    Raises AddressError (a ValueError) saying what is wrong with it."""
    if not isinstance(text, str):
        raise AddressError(f"{text!r} is not an address or prefix")
    text = text.strip()
    addr, slash, length = text.partition("/")
    if slash and not (length.isascii() and length.isdigit() and len(length) <= 3):
        raise AddressError(f"{text!r} has a bad prefix length")
    try:
        family, packed = ("v6", _PTON6(addr)) if ":" in addr else ("v4", _PTON4(addr))
    except (OSError, ValueError):
        raise AddressError(f"{text!r} is not an IPv4/IPv6 address or prefix") from None
    bits = WIDTH[family] * 8
    plen = int(length) if slash else bits
    if plen > bits:
        raise AddressError(f"{text!r}: prefix length {plen} is over {bits}")
    host_bits = (1 << (bits - plen)) - 1
    value = int.from_bytes(packed, "big")
    if value & host_bits:
        fixed = format_value((family, (value & ~host_bits).to_bytes(len(packed), "big"), plen))
        raise AddressError(f"{text} has host bits set (did you mean {fixed}?)")
    return family, packed, plen


def format_value(value: Value) -> str:
    """The canonical text of a value."""
    family, packed, plen = value
    if family == "v4":
        text = socket.inet_ntop(socket.AF_INET, packed)
        return text if plen == 32 else f"{text}/{plen}"
    text = str(ipaddress.IPv6Address(packed))
    return text if plen == 128 else f"{text}/{plen}"


def canonical(text: str) -> str:
    """The canonical text of an accepted form; a canonical IPv4 host (the bulk of big
    lists) is recognised without building anything. Raises AddressError."""
    if "/" not in text and ":" not in text:
        stripped = text.strip()
        try:
            _PTON4(stripped)  # strict: four decimal parts, no leading zeros: already canonical
            return stripped
        except (OSError, ValueError, TypeError):
            pass
    return format_value(parse(text))


def all_v4_hosts(texts: list[str]) -> bool:
    """Whether every text is a bare IPv4 host as `canonical` writes it (strict
    `inet_pton`: four decimal parts, no leading zeros, no blanks), in one C-level pass."""
    try:
        b"".join(map(_PTON4, texts))
    except (OSError, ValueError, TypeError):
        return False
    return True


def _record(value: Value) -> tuple[str, bytes]:
    family, packed, plen = value
    if plen == WIDTH[family] * 8:
        return f"{family}_hosts", packed
    return f"{family}_nets", packed + bytes((plen,))


def _v4_host_keys(texts: list[str]) -> bytes | None:
    """Sorted unique big-endian keys of plain IPv4 hosts, in C-level loops; None when any
    text is something else."""
    try:
        joined = b"".join(map(_PTON4, texts))
    except (OSError, TypeError, ValueError):
        return None
    values = array.array("I")
    values.frombytes(joined)
    return _v4_keys_of(sorted(set(_swapped(values))))


def _swapped(values: array.array) -> array.array:
    if sys.byteorder == "little":
        values.byteswap()
    return values


def _v4_keys_of(ints: Iterable[int]) -> bytes:
    out = array.array("I", ints)
    return _swapped(out).tobytes()


def host_ints(family: str, keys: bytes) -> Iterator[int]:
    """The addresses of a host table (big-endian keys) as ints."""
    if family == "v4":
        values = array.array("I")
        values.frombytes(keys)
        return iter(_swapped(values))
    return (int.from_bytes(keys[i:i + 16], "big") for i in range(0, len(keys), 16))


class _Records:
    """A fixed-width record table seen as a sequence of bytes, for bisect."""

    __slots__ = ("buf", "width")

    def __init__(self, buf: bytes, width: int):
        self.buf, self.width = buf, width

    def __len__(self) -> int:
        return len(self.buf) // self.width

    def __getitem__(self, i: int) -> bytes:
        w = self.width
        return self.buf[i * w:(i + 1) * w]


SMALL_EDIT = 2_000  # records changed by splicing; above, the tables are rebuilt


class Packed:
    """A list's contents in the binary form: immutable, hashable, compared by value.

    `addr in packed` for an `ipaddress` address is true when a host entry or a prefix
    covers it (a binary search per table and prefix length); for a str it is true when
    that entry (any accepted form) is in the list. Iterates canonical texts, sorted by
    table then address."""

    __slots__ = ("_plens", "_tables")

    def __init__(self, entries: Iterable[str] = ()):
        if isinstance(entries, Packed):
            self._tables, self._plens = entries._tables, entries._plens
            return
        texts = [e for e in entries if e and e.strip()] if not isinstance(entries, list) else entries
        hosts = _v4_host_keys(texts) if texts else b""
        if hosts is not None:
            self._set({"v4_hosts": hosts, "v4_nets": b"", "v6_hosts": b"", "v6_nets": b""})
            return
        parts: dict[str, set[bytes]] = {t: set() for t in TABLES}
        for text in texts:
            if text.strip():
                table, rec = _record(parse(text))
                parts[table].add(rec)
        self._set({t: b"".join(sorted(parts[t])) for t in TABLES})

    def _set(self, tables: dict[str, bytes]) -> None:
        self._tables = tables
        plens: dict[str, tuple[int, ...]] = {}
        for family in WIDTH:
            nets = tables[f"{family}_nets"]
            plens[family] = tuple(sorted(set(nets[RECORD[f"{family}_nets"] - 1::RECORD[f"{family}_nets"]])))
        self._plens = plens

    @classmethod
    def _of(cls, tables: dict[str, bytes]) -> Packed:
        self = cls.__new__(cls)
        self._set(tables)
        return self

    # ---- the binary form ----
    def to_bytes(self) -> bytes:
        t = self._tables
        counts = [len(t[name]) // RECORD[name] for name in TABLES]
        return _HEADER.pack(MAGIC, *counts) + b"".join(t[name] for name in TABLES)

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> Packed:
        """Raises AddressError for data that is not the binary form. Order within a table
        is trusted (the hub sorts); lengths are checked."""
        data = bytes(data)
        if len(data) < _HEADER.size:
            raise AddressError("packed list: shorter than its header")
        magic, *counts = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise AddressError(f"packed list: magic {magic!r}, expected {MAGIC!r}")
        at, tables = _HEADER.size, {}
        for name, count in zip(TABLES, counts):
            end = at + count * RECORD[name]
            tables[name] = data[at:end]
            at = end
        if at != len(data):
            raise AddressError(f"packed list: {len(data)} bytes where the counts say {at}")
        for family, width in WIDTH.items():
            if any(p > width * 8 for p in tables[f"{family}_nets"][width::width + 1]):
                raise AddressError(f"packed list: an {family} prefix length is out of range")
        return cls._of(tables)

    def table(self, name: str) -> bytes:
        """One table's records (see the module docstring), e.g. the host map's keys."""
        return self._tables[name]

    def count(self, name: str) -> int:
        return len(self._tables[name]) // RECORD[name]

    def nets(self, family: str) -> Iterator[tuple[int, int]]:
        """(network as int, prefix length) of one family's prefixes."""
        recs = self._tables[f"{family}_nets"]
        w = WIDTH[family]
        for i in range(0, len(recs), w + 1):
            yield int.from_bytes(recs[i:i + w], "big"), recs[i + w]

    def host_ints(self, family: str) -> Iterator[int]:
        return host_ints(family, self._tables[f"{family}_hosts"])

    # ---- as a collection ----
    def __len__(self) -> int:
        return sum(self.count(name) for name in TABLES)

    def __bool__(self) -> bool:
        return any(self._tables.values())

    def __iter__(self) -> Iterator[str]:
        for name in TABLES:
            family, recs = name[:2], self._tables[name]
            w, hosts = RECORD[name], name.endswith("hosts")
            for i in range(0, len(recs), w):
                rec = recs[i:i + w]
                yield format_value((family, rec, WIDTH[family] * 8) if hosts else (family, rec[:-1], rec[-1]))

    def prefixes(self) -> list[str]:
        """The entries that are real prefixes, as text."""
        return [e for e in self if "/" in e]

    def __contains__(self, item: object) -> bool:
        if isinstance(item, str):
            try:
                table, rec = _record(parse(item))
            except AddressError:
                return False
            return self._has(table, rec)
        if isinstance(item, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            return self.covers(item)
        return False

    def covers(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        """Whether a host entry is this address or a prefix entry holds it."""
        family = "v4" if address.version == 4 else "v6"
        packed = address.packed
        if self._has(f"{family}_hosts", packed):
            return True
        bits = WIDTH[family] * 8
        value = int(address)
        for plen in self._plens[family]:
            net = (value >> (bits - plen) << (bits - plen)) if plen else 0
            if self._has(f"{family}_nets", net.to_bytes(len(packed), "big") + bytes((plen,))):
                return True
        return False

    def _has(self, table: str, rec: bytes) -> bool:
        recs = _Records(self._tables[table], RECORD[table])
        i = bisect.bisect_left(recs, rec)
        return i < len(recs) and recs[i] == rec

    def present(self, candidates: Iterable[str]) -> tuple[str, ...]:
        """Those of candidates that are entries, in their order."""
        return tuple(c for c in candidates if c in self)

    # ---- deltas ----
    def changed(self, added: Packed, removed: Packed) -> Packed:
        """These entries with `removed` taken out, then `added` put in (an entry in both
        stays: the hub sends a changed expiry or comment that way). A small delta is
        spliced into the sorted tables (no per-entry object for the rest); a big one
        rebuilds the tables through sets."""
        added, removed = Packed(added), Packed(removed)
        if not added and not removed:
            return self
        tables = {}
        for name in TABLES:
            w = RECORD[name]
            plus, minus = added._tables[name], removed._tables[name]
            if not plus and not minus:
                tables[name] = self._tables[name]
                continue
            if (len(plus) + len(minus)) // w > SMALL_EDIT:
                tables[name] = _rebuild(self._tables[name], plus, minus, w)
            else:
                tables[name] = _splice(self._tables[name], plus, minus, w)
        return Packed._of(tables)

    def union(self, *others: Packed) -> Packed:
        """Every entry of these lists; a table only one of them holds is shared, not copied."""
        tables = {}
        for name in TABLES:
            parts = [p._tables[name] for p in (self, *others) if p._tables[name]]
            tables[name] = (parts[0] if parts else b"") if len(parts) <= 1 else \
                _rebuild(parts[0], b"".join(parts[1:]), b"", RECORD[name])
        return Packed._of(tables)

    # ---- value semantics ----
    def __eq__(self, other: object) -> bool:
        if isinstance(other, Packed):
            return self._tables == other._tables
        if isinstance(other, (set, frozenset)):
            return set(self) == {canonical(o) for o in other}
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self._tables[t] for t in TABLES))

    def __repr__(self) -> str:
        return f"Packed({', '.join(f'{t}={self.count(t)}' for t in TABLES)})"


def _records(buf: bytes, w: int) -> list[bytes]:
    return [buf[i:i + w] for i in range(0, len(buf), w)]


def _rebuild(base: bytes, plus: bytes, minus: bytes, w: int) -> bytes:
    if w == 4:
        def ints(b: bytes) -> set[int]:
            values = array.array("I")
            values.frombytes(b)
            return set(_swapped(values))
        return _v4_keys_of(sorted((ints(base) - (ints(minus) - ints(plus))) | ints(plus)))
    plus_set = set(_records(plus, w))
    return b"".join(sorted((set(_records(base, w)) - set(_records(minus, w))) | plus_set))


def _splice(base: bytes, plus: bytes, minus: bytes, w: int) -> bytes:
    recs = _Records(base, w)
    plus_set = set(_records(plus, w))
    edits = []  # (record index, 0 insert / 1 remove, record)
    for kind, group in ((0, plus_set), (1, set(_records(minus, w)) - plus_set)):
        for rec in group:
            i = bisect.bisect_left(recs, rec)
            there = i < len(recs) and recs[i] == rec
            if there == (kind == 1):  # add what is missing, remove what is there
                edits.append((i, kind, rec))
    if not edits:
        return base
    out, cur = [], 0
    for i, kind, rec in sorted(edits):
        out.append(base[cur * w:i * w])
        cur = i
        if kind == 0:
            out.append(rec)
        else:
            cur = i + 1
    out.append(base[cur * w:])
    return b"".join(out)


def to_wire(packed: Packed) -> str:
    """The packed form as the agent protocol and the agent's state file carry it: base64
    text inside the JSON document."""
    return base64.b64encode(packed.to_bytes()).decode("ascii")


def from_wire(text: object) -> Packed:
    """Raises AddressError when text is not `to_wire`'s output."""
    if not isinstance(text, str):
        raise AddressError(f"a packed list is a base64 string, not {type(text).__name__}")
    try:  # strict: only the alphabet, padding at the end (as validate=True, without its regex pass)
        data = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        raise AddressError("a packed list is not valid base64") from None
    return Packed.from_bytes(data)

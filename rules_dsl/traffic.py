"""Drop aggregates: what an agent says about the traffic its guard dropped, beside its top
sources. One definition for the agent (which counts them from the guard's drop samples),
the hub (which checks, stores and sums them) and the assistant (which summarises them).

A row is `(kind, proto, value, packets)`:

    kind "proto"  packets dropped per IP protocol          proto 0..255, value 0
    kind "dport"  per destination port of TCP/UDP/SCTP     proto in PORT_PROTOS, value 0..65535
    kind "size"   per packet-size bucket (IP length)       proto 0, value one of SIZE_BUCKETS

No addresses: rows of every kind are aggregates, bounded per interval (`MAX_PORTS` ports per
protocol, at most 256 protocols, len(SIZE_BUCKETS) sizes). Pure: no I/O.
"""
from __future__ import annotations

import bisect
import collections
from collections.abc import Iterable

KINDS = ("proto", "dport", "size")
PORT_PROTOS = frozenset({6, 17, 132})  # TCP, UDP, SCTP: the guard reads their ports
# lower bounds of the size buckets, in bytes of the IP packet: <64, 64-127, ..., >=1400
SIZE_BUCKETS = (0, 64, 128, 256, 512, 1024, 1400)
MAX_PORTS = 10  # the busiest destination ports per protocol and interval
MAX_ROWS = 256 + MAX_PORTS * len(PORT_PROTOS) + len(SIZE_BUCKETS)  # per interval
PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6", 132: "sctp"}

Row = tuple[str, int, int, int]


def size_bucket(length: int) -> int:
    """The lower bound of the bucket `length` falls in."""
    return SIZE_BUCKETS[max(0, bisect.bisect_right(SIZE_BUCKETS, max(0, length)) - 1)]


def size_label(lower: int) -> str:
    i = SIZE_BUCKETS.index(lower)
    if i == 0:
        return f"<{SIZE_BUCKETS[1]}"
    if i == len(SIZE_BUCKETS) - 1:
        return f">={lower}"
    return f"{lower}-{SIZE_BUCKETS[i + 1] - 1}"


def proto_name(proto: int) -> str:
    return PROTO_NAMES.get(proto, f"ip{proto}")


def aggregate(samples: Iterable[tuple[int, int, int]]) -> list[Row]:
    """Rows of one interval from `(proto, dport, length)` samples (dport 0: none)."""
    protos: collections.Counter[int] = collections.Counter()
    ports: dict[int, collections.Counter[int]] = collections.defaultdict(collections.Counter)
    sizes: collections.Counter[int] = collections.Counter()
    for proto, dport, length in samples:
        protos[proto] += 1
        if proto in PORT_PROTOS:
            ports[proto][dport] += 1
        sizes[size_bucket(length)] += 1
    rows: list[Row] = [("proto", p, 0, n) for p, n in sorted(protos.items())]
    for p in sorted(ports):
        rows += [("dport", p, port, n) for port, n in ports[p].most_common(MAX_PORTS)]
    rows += [("size", 0, b, n) for b, n in sorted(sizes.items())]
    return rows


def check(kind: str, proto: int, value: int) -> None:
    """Raises ValueError when the row is not one `aggregate` could make."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    if not 0 <= proto <= 255:
        raise ValueError("proto must be 0..255")
    if kind == "proto" and value != 0:
        raise ValueError("a proto row's value is 0")
    if kind == "dport" and (proto not in PORT_PROTOS or not 0 <= value <= 65535):
        raise ValueError("a dport row has proto 6, 17 or 132 and a port 0..65535")
    if kind == "size" and (proto != 0 or value not in SIZE_BUCKETS):
        raise ValueError(f"a size row has proto 0 and a value among {SIZE_BUCKETS}")


def grouped(rows: Iterable[dict]) -> dict[str, list]:
    """Rows as dicts (`kind`, `proto`, `value`, `packets`) summed for people and the
    assistant: `protocols` [(name, packets)] busiest first, `ports` [(protocol name,
    [(port, packets)] busiest MAX_PORTS)], `sizes` [(label, packets)] in bucket order.
    A row that `check` refuses (or that is not a row at all) is left out."""
    protos: collections.Counter[str] = collections.Counter()
    ports: dict[str, collections.Counter[int]] = collections.defaultdict(collections.Counter)
    sizes: collections.Counter[int] = collections.Counter()
    for row in rows:
        try:
            kind, proto, value, n = row["kind"], int(row["proto"]), int(row["value"]), max(0, int(row["packets"]))
            check(kind, proto, value)
        except (KeyError, TypeError, ValueError):
            continue
        if kind == "proto":
            protos[proto_name(proto)] += n
        elif kind == "dport":
            ports[proto_name(proto)][value] += n
        else:
            sizes[value] += n
    return {"protocols": protos.most_common(),
            "ports": [(name, ports[name].most_common(MAX_PORTS)) for name in sorted(ports)],
            "sizes": [(size_label(b), sizes[b]) for b in SIZE_BUCKETS if b in sizes]}

"""A small capture writer for the tests: pcap and pcapng, each link type replay reads.

Independent of rules_dsl.capture (written from the file-format specs), so a reader bug
is not mirrored by the writer.
"""
from __future__ import annotations

import struct

NS = 10**9


def to_link(link_type: int, eth: bytes) -> bytes:
    """An Ethernet frame re-framed for `link_type` (the IP packet keeps its bytes)."""
    etype, payload = eth[12:14], eth[14:]
    if link_type == 1:
        return eth
    if link_type in (101, 228, 229):
        return payload
    if link_type == 113:   # packet type, ARPHRD_ETHER, addr len, addr (8), protocol
        return struct.pack("!HHH8s", 0, 1, 6, eth[6:12]) + etype + payload
    if link_type == 276:   # protocol, reserved, ifindex, ARPHRD, packet type, addr len, addr
        return etype + struct.pack("!HIHBB8s", 0, 2, 1, 0, 6, eth[6:12]) + payload
    return payload


def pcap(records, link_type: int = 1, *, little: bool = True, nano: bool = False,
         snaplen: int = 65535) -> bytes:
    """records: (ts_ns, data). Classic pcap, in either byte order, micro or nano."""
    bo = "<" if little else ">"
    ticks = NS if nano else 10**6
    out = [struct.pack(bo + "IHHiIII", 0xA1B23C4D if nano else 0xA1B2C3D4, 2, 4, 0, 0,
                       snaplen, link_type)]
    for ts, data in records:
        frac = ts % NS // (NS // ticks)
        out.append(struct.pack(bo + "IIII", ts // NS, frac, len(data), len(data)) + data)
    return b"".join(out)


def _block(bo: str, btype: int, body: bytes) -> bytes:
    body += bytes(-len(body) % 4)
    n = len(body) + 12
    return struct.pack(bo + "II", btype, n) + body + struct.pack(bo + "I", n)


def _opt(bo: str, code: int, val: bytes) -> bytes:
    return struct.pack(bo + "HH", code, len(val)) + val + bytes(-len(val) % 4)


def shb(bo: str = "<") -> bytes:
    return _block(bo, 0x0A0D0D0A, struct.pack(bo + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def idb(link_type: int, bo: str = "<", tsresol: int | None = None, snaplen: int = 0) -> bytes:
    opts = b""
    if tsresol is not None:
        opts = _opt(bo, 9, bytes([tsresol])) + _opt(bo, 0, b"")
    return _block(bo, 1, struct.pack(bo + "HHI", link_type, 0, snaplen) + opts)


def ticks_per_s(tsresol: int | None) -> int:
    if tsresol is None:
        return 10**6
    return 2 ** (tsresol & 0x7F) if tsresol & 0x80 else 10**tsresol


def epb(iface: int, ts_ticks: int, data: bytes, bo: str = "<") -> bytes:
    return _block(bo, 6, struct.pack(bo + "IIIII", iface, ts_ticks >> 32, ts_ticks & 0xFFFFFFFF,
                                     len(data), len(data)) + data)


def spb(data: bytes, bo: str = "<") -> bytes:
    return _block(bo, 3, struct.pack(bo + "I", len(data)) + data)


def pcapng(records, link_type: int = 1, *, bo: str = "<", tsresol: int | None = None) -> bytes:
    """records: (ts_ns, data), one interface. Timestamps are rounded down to the resolution."""
    per = ticks_per_s(tsresol)
    out = [shb(bo), idb(link_type, bo, tsresol)]
    out += [epb(0, ts * per // NS, data, bo) for ts, data in records]
    return b"".join(out)

"""Reading packet captures (classic pcap and pcapng) for `bulwark rules replay`.

    read_capture(src) -> iterator of Record(ts_ns, link_type, data)
    ethernet_frame(link_type, data) -> bytes   what `parse_frame` reads

No I/O of its own: `src` is bytes or a binary file object the caller opened. It streams:
at most one record or block (capped at MAX_BLOCK) is held at a time, so a hostile file
costs bounded memory. Anything it cannot read is a `CaptureError` with the byte offset;
a file that ends on a record boundary is a clean stop.

Timestamps are integer nanoseconds since the epoch. A pcapng Simple Packet Block has no
timestamp: it takes the previous packet's (0 before any).
"""
from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from typing import BinaryIO, NamedTuple

from .errors import CaptureError

NS = 1_000_000_000
# The capture request the hub puts in an agent's desired state (docs/agent-protocol.md,
# "Capture"): each limit's name and its (least, most). The hub refuses a request outside
# them; the agent clamps to them whatever it is sent. One table for both sides.
REQUEST_BOUNDS: dict[str, tuple[int, int]] = {
    "max_frames": (1, 100_000), "max_seconds": (1, 300), "max_bytes": (1024, 64 * 1024 * 1024),
    "sample_every": (1, 1000),
}
MAX_BLOCK = 16 * 1024 * 1024

# link type → (name, how to find the ethertype): the ones replay understands
LINK_ETHERNET, LINK_RAW, LINK_IPV4, LINK_IPV6, LINK_SLL, LINK_SLL2 = 1, 101, 228, 229, 113, 276
LINK_TYPES = {LINK_ETHERNET: "Ethernet", LINK_RAW: "raw IP", LINK_IPV4: "raw IPv4",
              LINK_IPV6: "raw IPv6", LINK_SLL: "Linux cooked (SLL)",
              LINK_SLL2: "Linux cooked v2 (SLL2)"}
_KNOWN_OTHERS = {0: "BSD loopback", 105: "IEEE 802.11", 127: "802.11 radiotap",
                 108: "OpenBSD loopback", 220: "USB Linux mmapped", 12: "raw IP (OpenBSD)"}

# classic pcap magic (as read big-endian) → (byte order, ticks per second)
_PCAP_MAGIC = {0xA1B2C3D4: (">", 10**6), 0xD4C3B2A1: ("<", 10**6),
               0xA1B23C4D: (">", 10**9), 0x4D3CB2A1: ("<", 10**9)}
_SHB, _IDB, _SPB, _EPB = 0x0A0D0D0A, 0x00000001, 0x00000003, 0x00000006
_BOM = 0x1A2B3C4D


class Record(NamedTuple):
    ts_ns: int
    link_type: int
    data: bytes


def link_name(link_type: int) -> str:
    return LINK_TYPES.get(link_type) or _KNOWN_OTHERS.get(link_type) or "unknown"


def _check_link(link_type: int, offset: int) -> None:
    if link_type not in LINK_TYPES:
        known = ", ".join(f"{k} ({v})" for k, v in LINK_TYPES.items())
        raise CaptureError(offset, f"link type {link_type} ({link_name(link_type)}) is not "
                           f"supported; replay reads {known}")


class _Reader:
    """A file object read in exact-sized pieces, keeping the offset for errors."""

    def __init__(self, f: BinaryIO):
        self.f, self.offset = f, 0

    def read(self, n: int, what: str, *, eof_ok: bool = False) -> bytes | None:
        b = self.f.read(n)
        if eof_ok and not b:
            return None
        if b is None or len(b) != n:
            got = len(b or b"")
            raise CaptureError(self.offset + got, f"the file ends inside {what} "
                               f"({got} of {n} bytes)")
        self.offset += n
        return b


def read_capture(src: bytes | bytearray | memoryview | BinaryIO) -> Iterator[Record]:
    """Every packet of a pcap or pcapng capture, in file order."""
    f = io.BytesIO(bytes(src)) if isinstance(src, (bytes, bytearray, memoryview)) else src
    r = _Reader(f)
    head = r.read(4, "the file header", eof_ok=True)
    if head is None:
        raise CaptureError(0, "the file is empty")
    (magic,) = struct.unpack(">I", head)
    if magic in _PCAP_MAGIC:
        yield from _pcap(r, *_PCAP_MAGIC[magic])
    elif magic == _SHB:
        yield from _pcapng(r, head)
    else:
        raise CaptureError(0, f"not a pcap or pcapng file (magic 0x{magic:08x})")


def _pcap(r: _Reader, bo: str, ticks: int) -> Iterator[Record]:
    _major, _minor, _zone, _sig, snaplen, link = struct.unpack(bo + "HHiIII",
                                                               r.read(20, "the pcap header"))
    link &= 0xFFFF              # the upper bits may carry an FCS length
    _check_link(link, 20)
    del snaplen  # 0 or anything: records are bounded by MAX_BLOCK, not by the header
    while True:
        at = r.offset
        hdr = r.read(16, "a record header", eof_ok=True)
        if hdr is None:
            return
        sec, frac, incl, _orig = struct.unpack(bo + "IIII", hdr)
        if incl > MAX_BLOCK:
            raise CaptureError(at, f"record length {incl} is over the {MAX_BLOCK} byte cap")
        data = r.read(incl, "a record")
        # a "fraction" of a second or more (some writers emit it) is added, not refused
        yield Record(sec * NS + frac * (NS // ticks), link, data)


def _ts_ns(ts: int, resol: int, offset_s: int) -> int:
    """pcapng ticks → ns. `resol` is if_tsresol: 10^-v, or 2^-(v & 0x7f) with the top bit."""
    per_s = 2 ** (resol & 0x7F) if resol & 0x80 else 10 ** resol
    return ts * NS // per_s + offset_s * NS


def _idb(body: bytes, bo: str, at: int) -> tuple[int, int, int]:
    """An Interface Description Block → (link type, tsresol, tsoffset seconds)."""
    if len(body) < 8:
        raise CaptureError(at, "interface block shorter than its fields")
    link, _res, _snap = struct.unpack(bo + "HHI", body[:8])
    resol, toff = 6, 0
    pos = 8
    while pos + 4 <= len(body):
        code, olen = struct.unpack(bo + "HH", body[pos:pos + 4])
        val = body[pos + 4:pos + 4 + olen]
        if len(val) != olen:
            raise CaptureError(at + 8 + pos, f"interface option {code} runs past its block")
        if code == 0:
            break
        if code == 9 and olen == 1:
            resol = val[0]
            if (resol & 0x7F) > (63 if resol & 0x80 else 18):
                raise CaptureError(at + 8 + pos, f"if_tsresol {resol} is out of range")
        elif code == 14 and olen == 8:
            (toff,) = struct.unpack(bo + "q", val)
        pos += 4 + (olen + 3) // 4 * 4
    return link, resol, toff


def _pcapng(r: _Reader, head: bytes) -> Iterator[Record]:
    bo, ifaces, last_ts = ">", [], 0
    pending = head              # the first block's type, read to recognise the file
    while True:
        at = r.offset - len(pending)
        btype_raw = pending or r.read(4, "a block header", eof_ok=True)
        pending = b""
        if btype_raw is None:
            return
        len_raw = r.read(4, "a block header")
        prefix = b""
        if btype_raw == struct.pack(">I", _SHB):     # a palindrome: the same in both orders
            prefix = r.read(4, "a section header")
            bo = ">" if prefix == struct.pack(">I", _BOM) else "<"
            if struct.unpack(bo + "I", prefix)[0] != _BOM:
                raise CaptureError(at + 8, "section header has no byte-order magic")
            ifaces = []
        (btype,) = struct.unpack(bo + "I", btype_raw)
        (blen,) = struct.unpack(bo + "I", len_raw)
        if blen > MAX_BLOCK:
            raise CaptureError(at + 4, f"block length {blen} is over the {MAX_BLOCK} byte cap")
        if blen < 12 + len(prefix) or blen % 4:
            raise CaptureError(at + 4, f"block length {blen} is not a multiple of 4 and at "
                               f"least {12 + len(prefix)}")
        body = prefix + r.read(blen - 12 - len(prefix), "a block")
        (trail,) = struct.unpack(bo + "I", r.read(4, "a block trailer"))
        if trail != blen:
            raise CaptureError(r.offset - 4, f"block trailer length {trail} differs from "
                               f"its header's {blen}")
        if btype == _IDB:
            ifaces.append(_idb(body, bo, at))
        elif btype == _EPB:
            if len(body) < 20:
                raise CaptureError(at, "packet block shorter than its fields")
            iface, hi, lo, caplen, _orig = struct.unpack(bo + "IIIII", body[:20])
            if iface >= len(ifaces):
                raise CaptureError(at + 8, f"packet on interface {iface}, which the section "
                                   f"has not described ({len(ifaces)} described)")
            if caplen > len(body) - 20:
                raise CaptureError(at + 20, f"captured length {caplen} runs past its block")
            link, resol, toff = ifaces[iface]
            _check_link(link, at)
            last_ts = _ts_ns(hi << 32 | lo, resol, toff)
            yield Record(last_ts, link, body[20:20 + caplen])
        elif btype == _SPB:
            if not ifaces:
                raise CaptureError(at, "simple packet block before any interface block")
            if len(body) < 4:
                raise CaptureError(at, "simple packet block shorter than its fields")
            (orig,) = struct.unpack(bo + "I", body[:4])
            link = ifaces[0][0]
            _check_link(link, at)
            yield Record(last_ts, link, body[4:4 + orig])
        # other blocks (name resolution, statistics, custom, ...) say nothing about verdicts


def ethernet_frame(link_type: int, data: bytes) -> bytes:
    """`data` as an Ethernet frame, which is what `parse_frame` and the guard read.

    Raw IP takes the ethertype from the version nibble (anything but 6 is read as IPv4,
    so a garbage header is malformed, not non-IP); Linux cooked headers carry it."""
    if link_type == LINK_ETHERNET:
        return data
    if link_type in (LINK_RAW, LINK_IPV4, LINK_IPV6):
        v6 = link_type == LINK_IPV6 or (link_type == LINK_RAW and data[:1] and data[0] >> 4 == 6)
        return bytes(12) + (b"\x86\xdd" if v6 else b"\x08\x00") + data
    if link_type == LINK_SLL:
        return bytes(12) + data[14:] if len(data) >= 16 else b""
    if link_type == LINK_SLL2:
        return bytes(12) + data[0:2] + data[20:] if len(data) >= 20 else b""
    _check_link(link_type, 0)
    raise AssertionError("unreachable")  # pragma: no cover

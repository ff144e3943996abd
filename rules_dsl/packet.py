"""What rules match on, and the reference frame parser the XDP parser must agree with.

`parse_frame` is total: every byte string gives a `Packet`, never an exception. Its rules
(bounded, written down in docs/plan.md):

- shorter than an Ethernet header, or an ethertype other than IPv4/IPv6 after at most two
  VLAN tags (0x8100, 0x88a8): not IP → `l3=None`; such frames always pass, uncounted.
- a third VLAN tag, or a tag cut short: `malformed`.
- IPv4: version 4, IHL ≥ 5, the header and `total length` within the frame, total length ≥
  header; otherwise `malformed`. Options are skipped by IHL. The L4 header is read inside
  `total length` (Ethernet padding is never taken for a header).
- IPv6: version 6, payload length within the frame (a jumbogram's 0 leaves no room for its
  hop-by-hop header, so it is malformed); at most 6
  extension headers (hop-by-hop 0, routing 43, fragment 44, destination options 60), each
  within the payload; a 7th is `malformed`. Anything else ends the walk: it is the protocol.
- fragments: IPv4 MF set or offset ≠ 0; IPv6 a fragment header with M set or offset ≠ 0
  (an atomic fragment is not a fragment). A non-first fragment has no L4 fields.
- L4 on an unfragmented packet or a first fragment: TCP needs 20 bytes and 5 ≤ data offset,
  data offset × 4 within the segment; UDP 8 bytes; ICMP (IPv4, proto 1) and ICMPv6 (IPv6,
  next header 58) 4 bytes. Shorter is `malformed`. Other protocols: no L4 fields.
- `length` is the number of bytes from the start of the IP header to the end of the frame.
  It can pass 65,535 (generic XDP sees GRO super-packets); `length` matchers see it
  clamped to LENGTH_MAX (`match_length`), as the guard's range lookup does.
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ETH_IPV4, ETH_IPV6, ETH_ARP = 0x0800, 0x86DD, 0x0806
VLAN_TPIDS = (0x8100, 0x88A8)
MAX_VLAN_TAGS = 2
IPV6_EXT = (0, 43, 44, 60)
MAX_IPV6_EXT = 6
LENGTH_MAX = 65535   # the largest length a matcher sees (GUARD_LENGTH_MAX in bpf/guard.h)


@dataclass(frozen=True)
class Packet:
    l3: str | None = None                 # "ipv4" | "ipv6" | None (not IP)
    src: IPAddress | None = None
    dst: IPAddress | None = None
    proto: int | None = None
    sport: int | None = None
    dport: int | None = None
    tcp_flags: int | None = None
    length: int = 0
    is_fragment: bool = False
    is_first_fragment: bool = False
    icmp_type: int | None = None
    ttl: int | None = None
    malformed: bool = False

    @property
    def match_length(self) -> int:
        """The length `length` matchers compare: clamped to LENGTH_MAX. Byte-rate limits
        and counters take the real length."""
        return min(self.length, LENGTH_MAX)


def _u16(b: bytes, at: int) -> int:
    return (b[at] << 8) | b[at + 1]


def parse_frame(frame: bytes) -> Packet:
    """An Ethernet frame → Packet. Total: never raises (see the module docstring)."""
    frame = bytes(frame)
    if len(frame) < 14:
        return Packet()
    etype, off = _u16(frame, 12), 14
    tags = 0
    while etype in VLAN_TPIDS:
        if tags == MAX_VLAN_TAGS or len(frame) < off + 4:
            return Packet(malformed=True)
        etype, off, tags = _u16(frame, off + 2), off + 4, tags + 1
    if etype == ETH_IPV4:
        return _ipv4(frame, off)
    if etype == ETH_IPV6:
        return _ipv6(frame, off)
    return Packet()


def _ipv4(frame: bytes, off: int) -> Packet:
    avail = len(frame) - off
    bad = Packet(l3="ipv4", malformed=True, length=avail)
    if avail < 20 or frame[off] >> 4 != 4:
        return bad
    ihl = (frame[off] & 0x0F) * 4
    total = _u16(frame, off + 2)
    if ihl < 20 or ihl > avail or total < ihl or total > avail:
        return bad
    frag = _u16(frame, off + 6)
    more, offset = bool(frag & 0x2000), frag & 0x1FFF
    is_frag = more or offset != 0
    base = dict(l3="ipv4", src=ipaddress.IPv4Address(frame[off + 12:off + 16]),
                dst=ipaddress.IPv4Address(frame[off + 16:off + 20]), proto=frame[off + 9],
                length=avail, is_fragment=is_frag, is_first_fragment=is_frag and offset == 0,
                ttl=frame[off + 8])
    if offset != 0:
        return Packet(**base)
    return _l4(base, frame[off + ihl:off + total], icmp_proto=1)


def _ipv6(frame: bytes, off: int) -> Packet:
    avail = len(frame) - off
    bad = Packet(l3="ipv6", malformed=True, length=avail)
    if avail < 40 or frame[off] >> 4 != 6:
        return bad
    plen = _u16(frame, off + 4)
    if 40 + plen > avail:
        return bad
    nh, end, pos = frame[off + 6], off + 40 + plen, off + 40
    is_frag = first = False
    base = dict(l3="ipv6", src=ipaddress.IPv6Address(frame[off + 8:off + 24]),
                dst=ipaddress.IPv6Address(frame[off + 24:off + 40]), length=avail,
                ttl=frame[off + 7])
    count = 0
    while nh in IPV6_EXT:
        count += 1
        if count > MAX_IPV6_EXT:
            return bad
        if nh == 44:
            if pos + 8 > end:
                return bad
            fo = _u16(frame, pos + 2)
            offset, more = fo >> 3, bool(fo & 1)
            nh, pos = frame[pos], pos + 8
            if offset != 0 or more:
                is_frag, first = True, offset == 0
            if offset != 0:
                return Packet(**base, proto=nh, is_fragment=True, is_first_fragment=False)
        else:
            if pos + 2 > end:
                return bad
            hlen = (frame[pos + 1] + 1) * 8
            if pos + hlen > end:
                return bad
            nh, pos = frame[pos], pos + hlen
    base.update(proto=nh, is_fragment=is_frag, is_first_fragment=first)
    return _l4(base, frame[pos:end], icmp_proto=58)


def _l4(base: dict, seg: bytes, icmp_proto: int) -> Packet:
    proto = base["proto"]
    bad = Packet(l3=base["l3"], malformed=True, length=base["length"])
    if proto == 6:
        if len(seg) < 20:
            return bad
        doff = (seg[12] >> 4) * 4
        if doff < 20 or doff > len(seg):
            return bad
        return Packet(**base, sport=_u16(seg, 0), dport=_u16(seg, 2), tcp_flags=seg[13])
    if proto == 17:
        if len(seg) < 8:
            return bad
        return Packet(**base, sport=_u16(seg, 0), dport=_u16(seg, 2))
    if proto == icmp_proto:
        if len(seg) < 4:
            return bad
        return Packet(**base, icmp_type=seg[0])
    return Packet(**base)


# ---- building frames (for tests, the CLI and the data-plane test tables) ----------------

def l4_header_len(packet: Packet) -> int:
    if packet.is_fragment and not packet.is_first_fragment:
        return 0
    return {6: 20, 17: 8}.get(packet.proto, 8 if packet.icmp_type is not None else 0)


def min_length(packet: Packet) -> int:
    ip = 20 if packet.l3 == "ipv4" else 40 + (8 if packet.is_fragment else 0)
    return ip + l4_header_len(packet)


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def build_frame(packet: Packet, *, vlans: tuple[int, ...] = (), vlan_tpid: int = 0x8100,
                src_mac: bytes = b"\x02\0\0\0\0\x01", dst_mac: bytes = b"\x02\0\0\0\0\x02") -> bytes:
    """A valid frame that `parse_frame` reads back as `packet` (for well-formed packets).

    `packet.length` is honoured by padding the payload (0 = the smallest packet); a
    malformed packet gives an IPv4 header with a bad IHL; l3=None gives an ARP request.
    Raises ValueError when the packet cannot be encoded (e.g. length below its headers).
    """
    eth = dst_mac + src_mac
    for vid in vlans:
        eth += struct.pack("!HH", vlan_tpid, vid & 0x0FFF)
    if packet.malformed:
        return eth + struct.pack("!H", ETH_IPV4) + bytes([0x44]) + bytes(19)
    if packet.l3 is None:
        arp = struct.pack("!HHBBH", 1, ETH_IPV4, 6, 4, 1) + src_mac + bytes(4) + bytes(6) + bytes(4)
        return eth + struct.pack("!H", ETH_ARP) + arp
    length = packet.length or min_length(packet)
    if length < min_length(packet) or length > 65535:
        raise ValueError(f"length {length} cannot hold this packet's headers")
    later = packet.is_fragment and not packet.is_first_fragment
    l4len = l4_header_len(packet)
    ip_hdr = 20 if packet.l3 == "ipv4" else 40 + (8 if packet.is_fragment else 0)
    seg_len = length - ip_hdr
    proto = packet.proto or 0
    if later:
        l4 = bytes(seg_len)
    elif proto == 6:
        l4 = struct.pack("!HHIIBBHHH", packet.sport or 0, packet.dport or 0, 1, 0, 5 << 4,
                         packet.tcp_flags or 0, 65535, 0, 0) + bytes(seg_len - l4len)
    elif proto == 17:
        l4 = struct.pack("!HHHH", packet.sport or 0, packet.dport or 0, seg_len, 0) + bytes(seg_len - 8)
    elif packet.icmp_type is not None:
        l4 = bytes([packet.icmp_type, 0, 0, 0]) + bytes(seg_len - 4)
    else:
        l4 = bytes(seg_len)
    src, dst = packet.src.packed, packet.dst.packed
    if not later and proto in (6, 17, 58) or (not later and proto == 1 and packet.l3 == "ipv4"):
        if packet.l3 == "ipv4":
            pseudo = src + dst + struct.pack("!BBH", 0, proto, seg_len)
        else:
            pseudo = src + dst + struct.pack("!IxxxB", seg_len, proto)
        if proto == 1:
            pseudo = b""
        at = {6: 16, 17: 6}.get(proto, 2)
        c = _csum(pseudo + l4) or (0xFFFF if proto == 17 else 0)
        l4 = l4[:at] + struct.pack("!H", c) + l4[at + 2:]
    ttl = 64 if packet.ttl is None else packet.ttl
    if packet.l3 == "ipv4":
        frag = 0
        if packet.is_fragment:
            frag = 0x2000 if packet.is_first_fragment else 0x0001
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, length, 1, frag, ttl, proto, 0, src, dst)
        hdr = hdr[:10] + struct.pack("!H", _csum(hdr)) + hdr[12:]
        return eth + struct.pack("!H", ETH_IPV4) + hdr + l4
    nh = 44 if packet.is_fragment else proto
    hdr = struct.pack("!IHBB16s16s", 6 << 28, length - 40, nh, ttl, src, dst)
    if packet.is_fragment:
        fo = 1 if packet.is_first_fragment else (1 << 3)
        hdr += struct.pack("!BBHI", proto, 0, fo, 7)
    return eth + struct.pack("!H", ETH_IPV6) + hdr + l4


def packet_from_spec(spec, rep=None) -> Packet | None:
    """A test packet as written in an expect line → Packet (errors go to `rep`)."""
    from .resolve import parse_net
    from .vocab import ICMP_TYPES, ICMPV6_TYPES, PROTOCOLS, TCP_FLAGS
    if spec.kind == "non-ip":
        return Packet()
    if spec.kind == "malformed":
        return Packet(l3="ipv4", malformed=True, length=20)
    errors = []

    def err(msg, hint=None):
        errors.append(1)
        if rep:
            rep.error(spec.pos, msg, hint)
    addrs = []
    for text in (spec.src, spec.dst):
        net = parse_net(text, rep, spec.pos)
        if net is None:
            errors.append(1)
        elif net.num_addresses != 1:
            err(f"'{text}' is a prefix; a packet has one address")
        else:
            addrs.append(net.network_address)
    if errors:
        return None
    src, dst = addrs
    if src.version != dst.version:
        err("the two addresses are of different families")
        return None
    l3 = "ipv4" if src.version == 4 else "ipv6"
    proto = spec.proto
    if isinstance(proto, str):
        if proto not in PROTOCOLS:
            err(f"unknown protocol '{proto}'")
            return None
        proto = PROTOCOLS[proto]
    if proto > 255:
        err(f"protocol {proto} is out of range")
        return None
    later = spec.fragment == "later"
    ports = proto in (6, 17) and not later
    if ports and (spec.sport is None or spec.dport is None):
        err("a tcp or udp packet needs both ports", "write 192.0.2.1:40000 -> 198.51.100.2:22")
    if not ports and (spec.sport is not None or spec.dport is not None):
        err("only the first fragment of a tcp or udp packet has ports")
    for p in (spec.sport, spec.dport):
        if p is not None and p > 65535:
            err(f"port {p} is out of range")
    flags = None
    if proto == 6 and not later:
        flags = 0x10
        if spec.flags is not None:
            flags = 0
            for f in spec.flags:
                if f not in TCP_FLAGS:
                    err(f"a packet's flags are plain flag names, not '{f}'")
                flags |= TCP_FLAGS.get(f, 0)
    elif spec.flags is not None:
        err("only tcp packets have flags")
    icmp_proto = 1 if l3 == "ipv4" else 58
    icmp = None
    if proto == icmp_proto and not later:
        table = ICMP_TYPES if l3 == "ipv4" else ICMPV6_TYPES
        icmp = spec.icmp_type if spec.icmp_type is not None else "echo-request"
        if isinstance(icmp, str):
            if icmp not in table:
                err(f"unknown ICMP type '{icmp}'")
                icmp = 0
            else:
                icmp = table[icmp]
        elif icmp > 255:
            err(f"ICMP type {icmp} is out of range")
    elif spec.icmp_type is not None:
        err(f"only {'icmp' if l3 == 'ipv4' else 'icmpv6'} packets have a type")
    ttl = 64 if spec.ttl is None else spec.ttl
    if ttl > 255:
        err("ttl is 0..255")
    if errors:
        return None
    pkt = Packet(l3, src, dst, proto, spec.sport if ports else None,
                 spec.dport if ports else None, flags, 0, spec.fragment is not None,
                 spec.fragment == "first", icmp, ttl)
    length = spec.length if spec.length is not None else min_length(pkt)
    if length < min_length(pkt) or length > 65535:
        err(f"length {length} is outside {min_length(pkt)}..65535 for this packet")
        return None
    return Packet(**{**pkt.__dict__, "length": length})

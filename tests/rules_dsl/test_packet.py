"""parse_frame: the written-down rules for what the data plane reads, and build_frame."""
from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given, strategies as st

from rules_dsl import Packet, build_frame, parse_frame

V4 = (ipaddress.ip_address("192.0.2.1"), ipaddress.ip_address("198.51.100.2"))
V6 = (ipaddress.ip_address("2001:db8::1"), ipaddress.ip_address("2001:db8::2"))
SYN = Packet("ipv4", *V4, 6, 40000, 22, 0x02, 40, ttl=64)


@st.composite
def packets(draw):
    l3 = draw(st.sampled_from(["ipv4", "ipv6"]))
    src, dst = V4 if l3 == "ipv4" else V6
    proto = draw(st.sampled_from([6, 17, 1 if l3 == "ipv4" else 58, 47]))
    frag = draw(st.sampled_from([(False, False), (True, True), (True, False)]))
    later = frag[0] and not frag[1]
    ports = proto in (6, 17) and not later
    icmp = proto in (1, 58) and not later
    p = Packet(l3, src, dst, proto, draw(st.integers(0, 65535)) if ports else None,
               draw(st.integers(0, 65535)) if ports else None,
               draw(st.integers(0, 255)) if proto == 6 and not later else None, 0, frag[0],
               frag[1], draw(st.integers(0, 255)) if icmp else None, draw(st.integers(0, 255)))
    from rules_dsl.packet import min_length
    return Packet(**{**p.__dict__, "length": draw(st.integers(min_length(p), 1500))})


@given(packets(), st.lists(st.integers(0, 4095), max_size=2))
def test_build_then_parse_gives_the_packet_back(packet, vlans):
    assert parse_frame(build_frame(packet, vlans=tuple(vlans))) == packet


@given(st.binary(max_size=200))
def test_parse_frame_is_total(data):
    p = parse_frame(data)
    assert p.l3 in (None, "ipv4", "ipv6")


def _eth(etype: int, payload: bytes) -> bytes:
    return bytes(12) + struct.pack("!H", etype) + payload


def test_non_ip_and_short_frames_are_not_ip():
    assert parse_frame(build_frame(Packet())) == Packet()
    assert parse_frame(b"\x00" * 10) == Packet()
    assert parse_frame(_eth(0x88CC, bytes(40))).l3 is None


def test_vlan_tags_two_are_read_a_third_is_malformed():
    frame = build_frame(SYN, vlans=(10, 20), vlan_tpid=0x88A8)
    assert parse_frame(frame) == SYN
    assert parse_frame(build_frame(SYN, vlans=(1, 2, 3))).malformed


def _v4(**over) -> bytearray:
    return bytearray(build_frame(SYN))


@pytest.mark.parametrize("mutate, why", [
    (lambda f: f.__setitem__(14, 0x44), "IHL below 5"),
    (lambda f: f.__setitem__(14, 0x4F), "IHL beyond the frame"),
    (lambda f: f.__setitem__(14, 0x65), "version 6 in an IPv4 ethertype"),
    (lambda f: f.__setitem__(slice(16, 18), struct.pack("!H", 200)), "total length beyond the frame"),
    (lambda f: f.__setitem__(slice(16, 18), struct.pack("!H", 19)), "total length below the header"),
    (lambda f: f.__setitem__(slice(16, 18), struct.pack("!H", 30)), "TCP header cut by total length"),
    (lambda f: f.__setitem__(46, 0x40), "TCP data offset 4"),
])
def test_malformed_ipv4(mutate, why):
    f = _v4()
    mutate(f)
    assert parse_frame(bytes(f)).malformed, why


def test_trailing_padding_counts_in_length_but_not_in_headers():
    p = parse_frame(build_frame(SYN) + bytes(6))
    assert p.length == 46 and p.dport == 22 and not p.malformed


def test_ipv4_fragments():
    first = Packet("ipv4", *V4, 17, 1, 2, None, 100, True, True, ttl=64)
    later = Packet("ipv4", *V4, 17, None, None, None, 100, True, False, ttl=64)
    assert parse_frame(build_frame(first)) == first
    assert parse_frame(build_frame(later)) == later


def _v6_with_ext(count: int) -> bytes:
    ext = b""
    for i in range(count):
        ext += bytes([60 if i < count - 1 else 17, 0]) + bytes(6)
    udp = struct.pack("!HHHH", 1, 53, 8, 0)
    hdr = struct.pack("!IHBB16s16s", 6 << 28, len(ext) + 8, 0 if count else 17, 64,
                      V6[0].packed, V6[1].packed)
    return _eth(0x86DD, hdr + ext + udp)


def test_ipv6_extension_headers_at_most_six():
    assert parse_frame(_v6_with_ext(6)).dport == 53
    assert parse_frame(_v6_with_ext(7)).malformed


def test_ipv6_jumbogram_and_truncation_are_malformed():
    f = bytearray(_v6_with_ext(1))
    f[18:20] = b"\0\0"   # payload length 0: the extension header lies outside the payload
    assert parse_frame(bytes(f)).malformed
    assert parse_frame(_v6_with_ext(2)[:-3]).malformed

"""rules_dsl.capture: pcap and pcapng, every link type replay reads, and hostile files."""
from __future__ import annotations

import io
import ipaddress
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules_dsl import Packet, build_frame, parse_frame
from rules_dsl.capture import MAX_BLOCK, ethernet_frame, read_capture
from rules_dsl.errors import CaptureError

from . import captures as w
from .helpers import tcp, udp

LINKS = (1, 101, 228, 229, 113, 276)
V4 = build_frame(tcp("192.0.2.1", "198.51.100.2", dport=22))
V6 = build_frame(udp("2001:db8::1", "2001:db8::2", length=48))
ARP = build_frame(Packet())


def frames_for(link):
    if link == 228:
        return [V4, V4]
    if link == 229:
        return [V6, V6]
    return [V4, V6] + ([ARP] if link in (1, 113, 276) else [])


@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("fmt", ["pcap-le", "pcap-be", "pcap-nano", "pcapng-le", "pcapng-be",
                                 "pcapng-ns"])
def test_every_link_type_reads_back_as_the_same_packets(link, fmt):
    eths = frames_for(link)
    recs = [(1_700_000_000 * w.NS + i * 1000, w.to_link(link, f)) for i, f in enumerate(eths)]
    data = {"pcap-le": lambda: w.pcap(recs, link),
            "pcap-be": lambda: w.pcap(recs, link, little=False),
            "pcap-nano": lambda: w.pcap(recs, link, nano=True),
            "pcapng-le": lambda: w.pcapng(recs, link),
            "pcapng-be": lambda: w.pcapng(recs, link, bo=">"),
            "pcapng-ns": lambda: w.pcapng(recs, link, tsresol=9)}[fmt]()
    got = list(read_capture(io.BytesIO(data)))
    assert [r.ts_ns for r in got] == [t for t, _ in recs]
    assert {r.link_type for r in got} == {link}
    assert [parse_frame(ethernet_frame(r.link_type, r.data)) for r in got] == \
        [parse_frame(f) for f in eths]


def test_pcapng_per_interface_link_type_and_resolution_and_spb():
    data = (w.shb() + w.idb(113, tsresol=3) + w.idb(101, tsresol=0x80 | 10)
            + w.epb(0, 5, w.to_link(113, V4)) + w.epb(1, 3 * 1024, w.to_link(101, V6))
            + w.spb(w.to_link(113, V6))
            # a second section, big-endian, renumbers the interfaces
            + w.shb(">") + w.idb(1, ">") + w.epb(0, 7, V4, ">"))
    got = list(read_capture(data))
    assert [(r.ts_ns, r.link_type) for r in got] == [
        (5_000_000, 113), (3 * w.NS, 101), (3 * w.NS, 113), (7000, 1)]
    assert parse_frame(ethernet_frame(113, got[2].data)) == parse_frame(V6)


def test_unknown_blocks_are_skipped():
    data = w.shb() + w.idb(1) + w._block("<", 4, b"\x00" * 8) + w.epb(0, 1, V4)
    assert len(list(read_capture(data))) == 1


@pytest.mark.parametrize("make", [lambda: w.pcap([(0, b"x")], 105),
                                  lambda: w.pcapng([(0, b"x")], 127)])
def test_other_link_types_are_a_clear_error_naming_the_type(make):
    with pytest.raises(CaptureError) as e:
        list(read_capture(make()))
    assert "link type" in str(e.value) and ("105" in str(e.value) or "127" in str(e.value))


def test_raw_ip_with_a_garbage_version_is_malformed_not_non_ip():
    assert parse_frame(ethernet_frame(101, b"\x00" * 30)).malformed
    assert parse_frame(ethernet_frame(101, b"")).malformed


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(LINKS), st.sampled_from([None, 3, 6, 9, 0x80 | 20]),
       st.booleans(), st.lists(st.tuples(st.integers(0, 2**48), st.integers(0, 2**32 - 1),
                                         st.integers(0, 65535), st.integers(0, 300)),
                               max_size=8))
def test_round_trip_pcapng(link, tsresol, big, items):
    bo = ">" if big else "<"
    per = w.ticks_per_s(tsresol)
    eths = []
    for _, src, port, plen in items:
        p = udp(str(ipaddress.IPv4Address(src)), "198.51.100.2", sport=port, length=28 + plen)
        eths.append(build_frame(p))
    if link == 229:
        eths = [build_frame(udp("2001:db8::1", "2001:db8::2", sport=port, length=48)) for _, _, port, _ in items]
    data = w.shb(bo) + w.idb(link, bo, tsresol) + b"".join(
        w.epb(0, t, w.to_link(link, f), bo) for (t, *_), f in zip(items, eths))
    got = list(read_capture(data))
    assert [r.ts_ns for r in got] == [t * w.NS // per for t, *_ in items]
    assert [parse_frame(ethernet_frame(r.link_type, r.data)) for r in got] == \
        [parse_frame(f) for f in eths]


@settings(max_examples=60, deadline=None)
@given(st.booleans(), st.booleans(),
       st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 10**9 - 1),
                          st.binary(max_size=200)), max_size=8))
def test_round_trip_pcap(little, nano, items):
    unit = 1 if nano else 1000
    recs = [(s * w.NS + f // unit * unit, d) for s, f, d in items]
    got = list(read_capture(w.pcap(recs, 1, little=little, nano=nano)))
    assert [(r.ts_ns, r.data) for r in got] == recs


# ---- hostile input: a located error or a clean stop, never a traceback -------------------

GOOD_PCAP = w.pcap([(0, V4), (1000, V6)])
GOOD_PCAPNG = w.pcapng([(0, V4), (1000, V6)])


@pytest.mark.parametrize("data", [GOOD_PCAP, GOOD_PCAPNG])
def test_every_truncation_is_a_located_error_or_a_clean_stop(data):
    whole = list(read_capture(data))
    for n in range(len(data)):
        got = []
        try:
            for r in read_capture(data[:n]):
                got.append(r)  # noqa: PERF402 - the records before the error count
        except CaptureError as exc:
            assert 0 <= exc.offset <= n
        assert got == whole[:len(got)]


def test_a_block_length_of_2_32_minus_1_is_refused_before_reading():
    data = w.shb() + struct.pack("<II", 6, 2**32 - 1) + b"\0" * 64

    class Guarded(io.BytesIO):
        def read(self, n=-1):
            assert n is not None and 0 <= n <= MAX_BLOCK
            return super().read(n)
    with pytest.raises(CaptureError) as e:
        list(read_capture(Guarded(data)))
    assert e.value.offset == len(w.shb()) + 4 and "4294967295" in str(e.value)


def test_a_pcap_record_over_the_cap_is_refused():
    data = w.pcap([]) + struct.pack("<IIII", 0, 0, MAX_BLOCK + 1, 10)
    with pytest.raises(CaptureError) as e:
        list(read_capture(data))
    assert e.value.offset == 24


def test_a_fraction_of_a_whole_second_is_added_not_refused():
    data = w.pcap([]) + struct.pack("<IIII", 3, 1_500_000, 0, 0)
    assert [r.ts_ns for r in read_capture(data)] == [4_500_000_000]


def test_a_snaplen_of_0_still_reads():
    assert len(list(read_capture(w.pcap([(0, V4)], snaplen=0)))) == 1
    assert len(list(read_capture(w.shb() + w.idb(1, snaplen=0) + w.epb(0, 0, V4)))) == 1


def test_ten_megabytes_of_garbage_is_refused_at_byte_0():
    garbage = bytes((i * 131 + 7) & 0xFF for i in range(256)) * (10 * 4096)
    with pytest.raises(CaptureError) as e:
        list(read_capture(io.BytesIO(garbage)))
    assert e.value.offset == 0


@pytest.mark.parametrize("data,offset", [
    (b"", 0),
    (w.shb() + w.epb(0, 0, V4), 36),                                   # no interface
    (w.shb() + w.spb(V4), 28),
    (w.shb() + w.idb(1) + struct.pack("<II", 6, 14) + b"\0" * 8, 52),   # not a multiple of 4
    (w.shb() + w.idb(1) + w._block("<", 6, b"\0" * 8), 48),             # EPB too short
    (w.shb()[:-4] + b"\0\0\0\0", 24),                                   # bad trailer
    (w.shb()[:8] + b"\0\0\0\0" + w.shb()[12:], 8),                      # no byte-order magic
    (w.shb() + w.idb(1, tsresol=99), 44),                               # tsresol out of range
    (w.shb() + w.idb(1) + w._block("<", 6, struct.pack("<IIIII", 0, 0, 0, 500, 500)), 68),
])
def test_hostile_structures_are_located_errors(data, offset):
    with pytest.raises(CaptureError) as e:
        list(read_capture(data))
    assert e.value.offset == offset, str(e.value)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=400), st.integers(0, 200))
def test_random_corruption_never_raises_anything_else(noise, at):
    for good in (GOOD_PCAP, GOOD_PCAPNG):
        data = good[:at] + noise + good[at + len(noise):]
        try:
            for r in read_capture(data):
                parse_frame(ethernet_frame(r.link_type, r.data))
        except CaptureError:
            pass

"""The agent's bounded capture on a veth in a namespace: what it writes reads back as
pcap, through the same reader replay uses, and every bound ends it."""
from __future__ import annotations

import threading
import time

import pytest

from agent.capture import CaptureError, Limits, record
from bpf import in_netns
from rules_dsl import parse_frame
from rules_dsl.capture import read_capture

pytestmark = pytest.mark.kernel


def _record_while_sending(lab, limits, count=40):
    result = {}

    def go():
        with in_netns(lab.ns):
            result["c"] = record(lab.iface, limits)

    t = threading.Thread(target=go)
    t.start()
    time.sleep(0.3)  # the socket is bound before the first datagram leaves
    lab.send_udp(count, 25565, pace_every=8)
    t.join()
    return result["c"]


def test_frame_cap_and_sampling_read_back_as_the_traffic_sent(veth_lab):
    c = _record_while_sending(veth_lab, Limits(max_frames=10, max_seconds=10, sample_every=2))
    assert c.ended_by == "frames" and c.frames == 10 and c.seen >= 19
    records = list(read_capture(c.pcap))
    assert len(records) == 10
    packets = [parse_frame(r.data) for r in records]
    assert sum(p.proto == 17 and p.dport == 25565 and str(p.src) == veth_lab.peer_addr for p in packets) >= 8


def test_snaplen_cuts_frames(veth_lab):
    c = _record_while_sending(veth_lab, Limits(max_frames=5, max_seconds=10, snaplen=64), count=20)
    assert c.frames == 5 and all(len(r.data) <= 64 for r in read_capture(c.pcap))


def test_seconds_and_bytes_caps(veth_lab):
    c = _record_while_sending(veth_lab, Limits(max_frames=1000, max_seconds=0.6), count=5)
    assert c.ended_by == "seconds" and 1 <= c.frames <= 1000
    c = _record_while_sending(veth_lab, Limits(max_frames=1000, max_seconds=10, max_bytes=24 + 3 * 100))
    assert c.ended_by == "bytes" and len(c.pcap) <= 24 + 3 * 100


def test_no_such_interface_is_a_clear_error(veth_lab):
    with in_netns(veth_lab.ns), pytest.raises(CaptureError, match="nope0"):
        record("nope0", Limits(max_seconds=0.2))

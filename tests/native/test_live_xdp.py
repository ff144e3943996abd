"""XDP on a real veth pair in namespaces the test makes: real packets, real drops."""
from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import textwrap
import threading

import pytest

from bpf import Link, NotFound, XdpMode, in_netns, xdp_query
from tests.native.conftest import configure
from tests.native.layouts import CounterValue

pytestmark = pytest.mark.kernel

WATCHED = 9999


def packets_in(obj, slot: int) -> int:
    counters = obj.map("counters", key_type=ctypes.c_uint32, value_type=CounterValue)
    return sum(v.packets for v in counters[slot])


def received(lab, port: int, *, timeout_s: float = 0.3) -> int:
    """How many datagrams a socket bound in the protected namespace gets."""
    sock = lab.udp_socket("protected")
    sock.bind((lab.addr, port))
    sock.settimeout(timeout_s)
    return sock


def drain(sock) -> int:
    got = 0
    try:
        while True:
            sock.recv(2048)
            got += 1
    except TimeoutError:
        return got
    finally:
        sock.close()


def test_attached_program_drops_and_counts_real_packets(veth_lab, counter_object):
    configure(counter_object, port=WATCHED, drop=True)
    with in_netns(veth_lab.ns):
        link = Link.attach_xdp(counter_object.program("xdp_count_a"), veth_lab.iface, XdpMode.NATIVE)
        assert xdp_query(veth_lab.iface).mode is XdpMode.NATIVE
    with link:
        watched, control = received(veth_lab, WATCHED), received(veth_lab, WATCHED + 1)
        veth_lab.send_udp(200, WATCHED)
        veth_lab.send_udp(20, WATCHED + 1)
        assert drain(watched) == 0
        assert drain(control) == 20
        assert packets_in(counter_object, 0) == 200
    with in_netns(veth_lab.ns):  # closing an unpinned link detached the program
        assert xdp_query(veth_lab.iface).mode is None


def test_atomic_replace_under_traffic_loses_no_packet(veth_lab, counter_object):
    configure(counter_object, port=WATCHED, drop=False)
    prog_a, prog_b = counter_object.program("xdp_count_a"), counter_object.program("xdp_count_b")
    with in_netns(veth_lab.ns):
        link = Link.attach_xdp(prog_a, veth_lab.iface, XdpMode.NATIVE)
    total = 3000
    before = veth_lab.link_stats("peer")
    sender = threading.Thread(target=veth_lab.send_udp, args=(total, WATCHED),
                              kwargs={"pace_every": 32, "pause_s": 0.001})
    with link:
        sender.start()
        try:
            while packets_in(counter_object, 0) < total // 3:  # traffic flows through A
                pass
            link.update(prog_b, expected=prog_a)
        finally:
            sender.join()
        assert link.prog_id == prog_b.id
    after = veth_lab.link_stats("peer")
    lost_on_the_wire = after["tx_dropped"] - before["tx_dropped"]
    a, b = packets_in(counter_object, 0), packets_in(counter_object, 1)
    assert lost_on_the_wire == 0, "the veth ring overflowed: pacing too fast for this test"
    assert a > 0 and b > 0, (a, b)
    assert a + b == total


def test_pinned_link_keeps_the_program_attached_after_its_process_exits(veth_lab, pin_dir):
    """A separate Python process attaches, pins and exits; the drops go on without it."""
    script = textwrap.dedent(f"""
        import ctypes
        from bpf import Link, Object, XdpMode, in_netns
        from tests.native.conftest import BPF_TEST_DIR, configure
        obj = Object(BPF_TEST_DIR / "counter.bpf.o").load()
        configure(obj, port={WATCHED}, drop=True)
        obj.map("counters").pin({pin_dir!r} + "/counters")
        with in_netns({veth_lab.ns!r}):
            link = Link.attach_xdp(obj.program("xdp_count_a"), {veth_lab.iface!r}, XdpMode.NATIVE)
        link.pin({pin_dir!r} + "/link")
    """)
    subprocess.run([sys.executable, "-c", script], check=True, cwd=os.getcwd(), timeout=60)
    with in_netns(veth_lab.ns):
        assert xdp_query(veth_lab.iface).mode is XdpMode.NATIVE
    watched = received(veth_lab, WATCHED)
    veth_lab.send_udp(50, WATCHED)
    assert drain(watched) == 0
    from bpf import Map

    with Map.open_pinned(f"{pin_dir}/counters", key_type=ctypes.c_uint32,
                         value_type=CounterValue) as counters:
        assert sum(v.packets for v in counters[0]) == 50
    with in_netns(veth_lab.ns), Link.open_pinned(f"{pin_dir}/link") as link:
        assert link.mode is XdpMode.NATIVE
        link.detach()
        assert link.prog_id == 0 or xdp_query(veth_lab.iface).mode is None
        assert xdp_query(veth_lab.iface).mode is None


def test_generic_mode_on_request_and_reported_fallback(veth_lab, counter_object):
    prog = counter_object.program("xdp_count_a")
    with in_netns(veth_lab.ns):
        with Link.attach_xdp(prog, veth_lab.iface, XdpMode.GENERIC) as link:
            assert link.mode is XdpMode.GENERIC
            assert xdp_query(veth_lab.iface).mode is XdpMode.GENERIC
        # loopback has no native XDP: AUTO falls back to generic and says why
        with Link.attach_xdp(prog, "lo", XdpMode.AUTO) as link:
            assert link.mode is XdpMode.GENERIC
            assert "native XDP unavailable" in link.fallback_reason
            assert xdp_query("lo").prog_id == prog.id


def test_unknown_interface_is_not_found(veth_lab, counter_object):
    with in_netns(veth_lab.ns), pytest.raises(NotFound, match="no interface"):
        Link.attach_xdp(counter_object.program("xdp_count_a"), "eth-nope")


def test_upgrade_replaces_only_other_code_and_never_a_detached_link(veth_lab, counter_object):
    prog_a, prog_b = counter_object.program("xdp_count_a"), counter_object.program("xdp_count_b")
    with in_netns(veth_lab.ns):
        link = Link.attach_xdp(prog_a, veth_lab.iface, XdpMode.NATIVE)
    with link:
        assert link.upgrade(prog_a) is False and link.prog_id == prog_a.id
        assert link.upgrade(prog_b) is True and link.prog_id == prog_b.id
        with in_netns(veth_lab.ns):
            assert xdp_query(veth_lab.iface).prog_id == prog_b.id
        link.detach()
        with pytest.raises(NotFound):
            link.upgrade(prog_a)  # an upgrade never attaches anew

"""Upgrading the attached guard to another build: through the link, atomically, over the
program found there. Under traffic from the peer, every packet is judged by one of the
two builds (the allowed source's packets all arrive, the denied source's are all
counted as dropped in the counters both builds share) and a
denied source never gets past the guard (a packet socket behind it sees none of it)."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from bpf import Link, XdpMode, in_netns
from bpf.errors import BpfError
from bpf.guard import Guard
from bpf.guard_plan import spec_from_plan
from rules_dsl import parse
from rules_dsl.check import check_resolved
from rules_dsl.compiler import compile_resolved

pytestmark = pytest.mark.kernel

POLICY = """policy "upgrade"
default pass
drop from 203.0.113.0/24
"""
DENIED, PORT = "203.0.113.9", 5000
ETH_P_IP = 0x0800


def plan():
    res, _ = check_resolved(parse(POLICY, "u.bw"), None)
    return compile_resolved(res)


def behind_guard(lab) -> socket.socket:
    """A packet socket on the protected interface: it sees what XDP let through."""
    with in_netns(lab.ns):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
        sock.bind((lab.iface, ETH_P_IP))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 23)
    sock.settimeout(0.3)
    return sock


def seen_by_source(sock) -> dict[str, int]:
    seen: dict[str, int] = {}
    try:
        while True:
            ip = sock.recv(2048)
            if len(ip) >= 24 and ip[9] == 17 and int.from_bytes(ip[22:24], "big") == PORT:
                src = socket.inet_ntoa(ip[12:16])
                seen[src] = seen.get(src, 0) + 1
    except TimeoutError:
        return seen


def send_both(lab, count: int, started: threading.Event) -> None:
    """`count` datagrams from the denied source and as many from the allowed one, interleaved."""
    with in_netns(lab.peer_ns):
        bad, good = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with bad, good:
        bad.bind((DENIED, 0))
        good.bind((lab.peer_addr, 0))
        for i in range(count):
            bad.sendto(b"d" * 32, (lab.addr, PORT))
            good.sendto(b"p" * 32, (lab.addr, PORT))
            if i == 50:
                started.set()
            if i % 32 == 31:
                time.sleep(0.001)
    started.set()


def total_dropped(guard) -> int:
    return sum(c.dropped for c in guard.counters().values())


def test_upgrade_under_traffic_judges_every_packet_and_changes_the_tag(veth_lab, pin_dir, guard_builds):
    old_build, new_build = guard_builds
    veth_lab.add_peer_address(DENIED)
    with Guard(object_path=old_build, pinned=pin_dir) as old:
        old.pin_maps(pin_dir)
        old.apply(spec_from_plan(plan(), {}))
        with Guard(object_path=new_build, pinned=pin_dir) as new:  # the same (pinned) maps
            assert old.program.tag != new.program.tag
            with in_netns(veth_lab.ns):
                link = Link.attach_xdp(old.program, veth_lab.iface, XdpMode.NATIVE)
            total = 1500
            sniffer = behind_guard(veth_lab)
            before = veth_lab.link_stats("peer")
            started = threading.Event()
            sender = threading.Thread(target=send_both, args=(veth_lab, total, started))
            with link, sniffer:
                sender.start()
                try:
                    started.wait(10)
                    assert link.upgrade(new.program) is True
                finally:
                    sender.join()
                assert link.prog_id == new.program.id
                seen = seen_by_source(sniffer)
                dropped = total_dropped(new)
                assert link.upgrade(new.program) is False  # same tag: nothing replaced
                assert link.prog_id == new.program.id
    after = veth_lab.link_stats("peer")
    assert after["tx_dropped"] == before["tx_dropped"], "the veth ring overflowed: pace slower"
    assert seen.get(DENIED, 0) == 0, "a denied packet got past the guard during the swap"
    assert seen.get(veth_lab.peer_addr, 0) == total
    assert dropped == total  # every denied packet met one of the two builds, which dropped it


def test_upgrade_refuses_when_the_link_runs_another_program_than_expected(veth_lab, pin_dir, guard_builds):
    """The swap names the program it replaces: one that changed meanwhile is not overwritten."""
    old_build, new_build = guard_builds
    with Guard(object_path=old_build, pinned=pin_dir) as old, \
            Guard(object_path=new_build, pinned=pin_dir) as new:
        with in_netns(veth_lab.ns):
            link = Link.attach_xdp(old.program, veth_lab.iface, XdpMode.NATIVE)
        with link:
            with pytest.raises(BpfError):
                link.update(old.program, expected=new.program)
            assert link.prog_id == old.program.id

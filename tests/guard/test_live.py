"""Each example policy enforced on real packets: a veth pair in namespaces the test makes.

The guard is attached to the protected end; traffic comes from the peer. A TCP
handshake to a real listener passes, a denied source is dropped (or, in monitor mode,
counted and delivered), a UDP flood beyond its rate is cut to its burst; the per-rule
counters match what was sent and what arrived.
"""
from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from bpf import Link, XdpMode, in_netns
from bpf.guard_plan import spec_from_plan
from rules_dsl import parse
from rules_dsl.compiler import compile_resolved
from rules_dsl.check import check_resolved
from rules_dsl.evaluate import evaluate
from rules_dsl.packet import Packet

pytestmark = pytest.mark.kernel

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@dataclass(frozen=True)
class Scenario:
    example: str
    lists: dict
    handshake: tuple[str, int] | None  # (client source, server port)
    denied: tuple[str, int, int] | None  # (source, source port, destination port) of UDP
    flood: tuple[str, int, int] | None  # (source, destination port, burst) of UDP


SCENARIOS = [
    Scenario("web", {"crowdsec-ban": ["203.0.113.0/24"]}, ("192.0.2.2", 443), ("203.0.113.9", 4000, 9999), None),
    Scenario("game", {}, ("198.51.100.7", 22), ("192.0.2.2", 123, 27015), ("192.0.2.2", 27015, 400)),
    Scenario("dns", {}, ("198.51.100.7", 22), ("198.51.100.7", 4000, 53), ("192.0.2.2", 53, 200)),
    Scenario("ssh", {}, ("198.51.100.7", 22), None, None),
    Scenario("mail", {"spamhaus-drop": ["203.0.113.0/25"]}, ("192.0.2.2", 25), ("203.0.113.9", 4000, 9999), None),
]


def deciding_slot(plan, lists, src, sport, dport, lab):
    """The counter slot the reference evaluator says decides this datagram."""
    from ipaddress import ip_address

    packet = Packet(l3="ipv4", src=ip_address(src), dst=ip_address(lab.addr), proto=17, sport=sport,
                    dport=dport, length=60, ttl=64)
    decision, _ = evaluate(plan, packet, None, 0, lists=lists)
    return 1024 if decision.rule is None else decision.rule


def udp_burst(lab, src, sport, dport, count, *, rcvbuf=1 << 22):
    """Send count datagrams from src:sport; return how many the listener received."""
    with in_netns(lab.ns):
        listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    listener.bind((lab.addr, dport))
    listener.settimeout(0.3)
    with in_netns(lab.peer_ns):
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sender, listener:
        sender.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sender.bind((src, sport))
        for i in range(count):
            sender.sendto(b"q" * 40, (lab.addr, dport))
            if i % 64 == 63:
                time.sleep(0.001)
        got = 0
        try:
            while True:
                listener.recv(2048)
                got += 1
        except TimeoutError:
            return got


def handshake(lab, src, port) -> bool:
    with in_netns(lab.ns):
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with in_netns(lab.peer_ns):
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with server, client:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((lab.addr, port))
        server.listen()
        server.settimeout(3)
        client.settimeout(3)
        client.bind((src, 0))
        client.connect((lab.addr, port))
        conn, peer = server.accept()
        conn.close()
        return peer[0] == src


def counted(guard, slot):
    c = guard.counters().get(slot)
    return (c.packets, c.dropped) if c else (0, 0)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.example for s in SCENARIOS])
def test_example_enforced_on_real_traffic(guard, veth_lab, scenario):
    path = EXAMPLES / f"{scenario.example}.bw"
    res, _ = check_resolved(parse(path.read_text(), path.name), None)
    plan = compile_resolved(res)
    monitor = plan.xdp.mode == "monitor"
    guard.apply(spec_from_plan(plan, scenario.lists))
    guard.set_clock(0)  # real time on real traffic
    for src in {s for s in (scenario.handshake and scenario.handshake[0],
                            scenario.denied and scenario.denied[0],
                            scenario.flood and scenario.flood[0]) if s and s != veth_lab.peer_addr}:
        veth_lab.add_peer_address(src)
    with in_netns(veth_lab.ns):
        link = Link.attach_xdp(guard.program, veth_lab.iface, XdpMode.NATIVE)
    with link:
        if scenario.handshake:
            assert handshake(veth_lab, *scenario.handshake)
        if scenario.denied:
            src, sport, dport = scenario.denied
            slot = deciding_slot(plan, scenario.lists, src, sport, dport, veth_lab)
            before = counted(guard, slot)
            got = udp_burst(veth_lab, src, sport, dport, 40)
            after = counted(guard, slot)
            assert (after[0] - before[0], after[1] - before[1]) == (40, 40)
            assert got == (40 if monitor else 0)
        if scenario.flood:
            src, dport, burst = scenario.flood
            slot = deciding_slot(plan, scenario.lists, src, 40000, dport, veth_lab)
            before = counted(guard, slot)
            sent = 3 * burst
            got = udp_burst(veth_lab, src, 40000, dport, sent)
            packets, dropped = (a - b for a, b in zip(counted(guard, slot), before))
            assert packets == sent
            assert got == sent - dropped
            assert burst <= got < burst + burst // 4  # the burst, plus what refilled meanwhile

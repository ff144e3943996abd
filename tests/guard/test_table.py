"""The guard on hand-picked packets: a table of description, frame, expected outcome."""
from __future__ import annotations

import ctypes
import ipaddress
import threading

import pytest

from bpf import btf_layout, ctypes_layout
from bpf import guard_tables as gt
from bpf.guard import LAYOUTS, OBJECT_PATH
from bpf.guard_plan import spec_from_plan
from bpf.object import XdpAction
from rules_dsl.packet import LENGTH_MAX, Packet, build_frame
from rules_dsl.plan import MAX_RULE_LIMITS, AddrSet, Plan, RateProfile, XdpPlan, XdpRule
from tests.guard.harness import Outcome, compare, kernel_outcome

pytestmark = pytest.mark.kernel

A = ipaddress.ip_address
DENY = AddrSet(0, "deny", ("198.51.100.9",), ("203.0.113.0/24",), (), ("2001:db8:bad::/48",), ("deny",))
PLAN = Plan("table", XdpPlan(
    mode="enforce", default="drop", malformed="drop", sets=(DENY,),
    rate_profiles=(RateProfile(0, "packets", 1, 2, "src", 32, 64, 0),),
    rules=(
        XdpRule("drop", src=0),
        XdpRule("pass", proto=(6,), dport=((22, 22), (80, 80))),
        XdpRule("drop", proto=(6,), tcp_flags=((0x03, 0x03), (0x3f, 0x00))),
        XdpRule("limit", proto=(17,), dport=((53, 53),), rate_profiles=(0,)),
        XdpRule("pass", proto=(1, 58), icmp_type=(8, 128)),
        XdpRule("pass", fragment="yes"),
    )))


def tcp(src, dport, flags=0x02, **kw):
    return build_frame(Packet(l3="ipv4" if A(src).version == 4 else "ipv6", src=A(src),
                              dst=A("192.0.2.1" if A(src).version == 4 else "2001:db8::1"),
                              proto=6, sport=40000, dport=dport, tcp_flags=flags, **kw), **{})


def udp(src, dport):
    return build_frame(Packet(l3="ipv4", src=A(src), dst=A("192.0.2.1"), proto=17, sport=5353, dport=dport))


CASES = [
    ("ARP is not IP: passes, uncounted", build_frame(Packet()), Outcome("pass", None)),
    ("a listed host is dropped by rule 0", tcp("198.51.100.9", 22), Outcome("drop", 0)),
    ("a host inside a listed prefix is dropped", tcp("203.0.113.77", 22), Outcome("drop", 0)),
    ("IPv6 inside a listed prefix is dropped", tcp("2001:db8:bad::1", 22), Outcome("drop", 0)),
    ("a hub list entry is dropped", tcp("192.0.2.77", 22), Outcome("drop", 0)),
    ("ssh from elsewhere passes", tcp("192.0.2.10", 22), Outcome("pass", 1)),
    ("syn+fin is dropped", tcp("192.0.2.10", 443, flags=0x03), Outcome("drop", 2)),
    ("a null scan is dropped", tcp("192.0.2.10", 443, flags=0x00), Outcome("drop", 2)),
    ("a double-tagged frame is classified", build_frame(Packet(
        l3="ipv4", src=A("192.0.2.10"), dst=A("192.0.2.1"), proto=6, sport=1, dport=80, tcp_flags=2),
        vlans=(10, 20), vlan_tpid=0x88A8), Outcome("pass", 1)),
    ("three tags are malformed", build_frame(Packet(
        l3="ipv4", src=A("192.0.2.10"), dst=A("192.0.2.1"), proto=6, sport=1, dport=80, tcp_flags=2),
        vlans=(1, 2, 3)), Outcome("drop", "malformed")),
    ("a bad IHL is malformed", build_frame(Packet(l3="ipv4", malformed=True)), Outcome("drop", "malformed")),
    ("echo request passes", build_frame(Packet(l3="ipv4", src=A("192.0.2.10"), dst=A("192.0.2.1"),
                                               proto=1, icmp_type=8)), Outcome("pass", 4)),
    ("a later fragment has no ports: it meets the fragment rule", build_frame(Packet(
        l3="ipv4", src=A("192.0.2.10"), dst=A("192.0.2.1"), proto=6, is_fragment=True)),
        Outcome("pass", 5)),
    ("anything else meets the default", udp("192.0.2.10", 9999), Outcome("drop", "default")),
]


@pytest.mark.parametrize("description,frame,expected", CASES, ids=[c[0] for c in CASES])
def test_packet_table(guard, description, frame, expected):
    guard.apply(spec_from_plan(PLAN, {"deny": ["192.0.2.77"]}))
    got, _ = kernel_outcome(guard, frame, guard.counters())
    assert got == expected, description
    compare(guard, PLAN, [(frame, 0)], {"deny": ["192.0.2.77"]})  # and the reference agrees


def test_rate_limit_passes_the_burst_then_drops(guard):
    guard.apply(spec_from_plan(PLAN))
    guard.set_clock(10**12)
    verdicts = [guard.program.test_run(udp("192.0.2.10", 53)).retval for _ in range(4)]
    assert verdicts == [XdpAction.PASS, XdpAction.PASS, XdpAction.DROP, XdpAction.DROP]
    guard.set_clock(10**12 + 10**9)  # one second: one token back
    assert guard.program.test_run(udp("192.0.2.10", 53)).retval == XdpAction.PASS
    assert guard.program.test_run(udp("192.0.2.11", 53)).retval == XdpAction.PASS  # its own bucket
    counted = guard.counters()[3]
    assert (counted.packets, counted.dropped) == (6, 2)


def test_stacked_limits_charge_in_order_and_stop_at_the_first_refusal(guard):
    """Per source (burst 2) then global (burst 3): a source over its own limit does not
    spend the global budget; a source refused by the global one has spent its own."""
    stacked = Plan("stacked", XdpPlan(
        mode="enforce", default="drop", malformed="drop",
        rate_profiles=(RateProfile(0, "packets", 1, 2, "src", 32, 128, 0),
                       RateProfile(1, "packets", 1, 3, "global", 32, 128, 0)),
        rules=(XdpRule("limit", proto=(17,), rate_profiles=(0, 1)),)))
    frames = [udp(src, 53) for src in ["192.0.2.10"] * 3 + ["192.0.2.11"] * 2]
    guard.apply(spec_from_plan(stacked))
    guard.set_clock(10**12)
    verdicts = [guard.program.test_run(f).retval for f in frames]
    assert verdicts == [XdpAction.PASS] * 2 + [XdpAction.DROP, XdpAction.PASS, XdpAction.DROP]
    guard.set_clock(10**12 + 10**9)   # one token back in every bucket
    assert guard.program.test_run(udp("192.0.2.11", 53)).retval == XdpAction.PASS
    assert guard.program.test_run(udp("192.0.2.12", 53)).retval == XdpAction.DROP
    later = [(udp("192.0.2.11", 53), 10**9), (udp("192.0.2.12", 53), 10**9)]
    compare(guard, stacked, [(f, 0) for f in frames] + later)   # and the reference agrees


def test_monitor_mode_counts_but_never_drops(guard):
    monitor = Plan("m", XdpPlan(**{**PLAN.xdp.__dict__, "mode": "monitor"}))
    guard.apply(spec_from_plan(monitor))
    assert guard.program.test_run(tcp("198.51.100.9", 22)).retval == XdpAction.PASS
    assert guard.counters()[0].dropped == 1


def test_one_entry_list_changes_take_effect_live(guard):
    guard.apply(spec_from_plan(PLAN, {"deny": []}))
    frame = tcp("192.0.2.50", 22)
    assert guard.program.test_run(frame).retval == XdpAction.PASS
    guard.update_set(0, added=["192.0.2.50"])
    assert guard.program.test_run(frame).retval == XdpAction.DROP
    guard.update_set(0, added=["192.0.2.0/28"])
    assert guard.program.test_run(tcp("192.0.2.3", 22)).retval == XdpAction.DROP
    guard.update_set(0, removed=["192.0.2.50", "192.0.2.0/28"])
    assert guard.program.test_run(frame).retval == XdpAction.PASS
    assert guard.program.test_run(tcp("192.0.2.3", 22)).retval == XdpAction.PASS
    assert guard.program.test_run(tcp("203.0.113.77", 22)).retval == XdpAction.DROP  # inline kept


def test_nested_prefixes_keep_their_memberships(guard):
    guard.apply(spec_from_plan(PLAN, {"deny": []}))
    guard.update_set(0, added=["10.0.0.0/8"])
    guard.update_set(0, added=["10.1.0.0/16"])
    guard.update_set(0, removed=["10.0.0.0/8"])
    assert guard.program.test_run(tcp("10.1.2.3", 22)).retval == XdpAction.DROP
    assert guard.program.test_run(tcp("10.2.0.1", 22)).retval == XdpAction.PASS


def test_whole_list_swap_never_passes_an_address_in_both_lists(guard):
    """Swap a 50,000-entry list for another while packets from an address on both run."""
    def hosts(base):
        return [f"10.{base}.{i >> 8}.{i & 255}" for i in range(50_000)] + ["192.0.2.66"]

    old, new = hosts(1), hosts(2)
    guard.apply(spec_from_plan(PLAN, {"deny": old}))
    frame = tcp("192.0.2.66", 22)
    passed, runs, stop = [], [0], threading.Event()

    def traffic():
        while not stop.is_set():
            if guard.program.test_run(frame, repeat=1).retval != XdpAction.DROP:
                passed.append(runs[0])
            runs[0] += 1

    sender = threading.Thread(target=traffic)
    sender.start()
    try:
        for lists in ({"deny": new}, {"deny": old}, {"deny": new}):
            guard.apply(spec_from_plan(PLAN, lists))
    finally:
        stop.set()
        sender.join()
    assert runs[0] > 0 and passed == []
    assert guard.program.test_run(tcp("10.2.0.1", 22)).retval == XdpAction.DROP
    assert guard.program.test_run(tcp("10.1.0.1", 22)).retval == XdpAction.PASS


def test_a_spec_too_big_is_refused_and_changes_nothing(guard):
    guard.apply(spec_from_plan(PLAN))
    before = guard.generation
    with pytest.raises(gt.GuardSpecError, match="1025 rules"):
        guard.apply(gt.GuardSpec(rules=(gt.Rule(gt.DROP),) * 1025))
    assert guard.generation == before
    assert guard.program.test_run(tcp("198.51.100.9", 22)).retval == XdpAction.DROP


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_python_layouts_match_the_btf(name):
    assert ctypes_layout(LAYOUTS[name], name) == btf_layout(OBJECT_PATH, name)


def test_header_constants_match():
    """The Python side reads guard.h's constants from the native build; the pure DSL (which
    cannot import it) keeps its own copies, checked here against them."""
    text = (OBJECT_PATH.parent / "guard.h").read_text()
    assert f"#define GUARD_MAX_RULES {gt.MAX_RULES}\n" in text  # the build read this header
    assert gt.LENGTH_MAX == LENGTH_MAX
    assert ctypes.sizeof(LAYOUTS["guard_bitmap"]) == gt.WORDS * 8
    assert gt.MAX_LIMITS == MAX_RULE_LIMITS


def test_pins_of_a_build_with_another_layout_are_replaced_not_reused(pin_dir):
    """guard_action grew with stacked limits: maps pinned by the previous build no longer
    fit this program, so the loader makes its own and replaces their pins."""
    from pathlib import Path

    from bpf.guard import Guard, GuardAction
    from bpf.maps import Map, MapType
    old = Map.create(MapType.ARRAY, "g_actions", 4, 32, 2 * gt.SLOTS)
    old.pin(Path(pin_dir) / "g_actions")
    old.close()
    with Guard(pinned=pin_dir) as g:
        g.pin_maps(pin_dir)
        g.apply(spec_from_plan(PLAN))
        assert g.program.test_run(tcp("198.51.100.9", 22)).retval == XdpAction.DROP
    pinned = Map.open_pinned(Path(pin_dir) / "g_actions")
    try:
        assert pinned.value_size == ctypes.sizeof(GuardAction)
    finally:
        pinned.close()

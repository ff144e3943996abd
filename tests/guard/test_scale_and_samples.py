"""A thousand rules, drop samples in the ring buffer, and the generic-mode fallback."""
from __future__ import annotations

import ipaddress
import time

import pytest

from bpf import Link, XdpMode, in_netns
from bpf.guard import GuardSample
from bpf.guard_plan import apply_plan
from bpf.ringbuf import RingBuffer
from rules_dsl import build_frame, compile, parse
from rules_dsl.packet import Packet
from tests.guard.harness import compare

pytestmark = pytest.mark.kernel


def thousand_rules():
    lines = ['policy "many"', "default pass", "set office { 198.51.100.0/24 }"]
    lines += [f"drop tcp from @office dport {1000 + i}" if i % 2 else f"drop udp dport {1000 + i}"
              for i in range(1000)]
    return compile(parse("\n".join(lines)))


def frame(src, proto, dport):
    return build_frame(Packet(l3="ipv4", src=ipaddress.ip_address(src),
                              dst=ipaddress.ip_address("192.0.2.1"), proto=proto, sport=40000,
                              dport=dport, tcp_flags=0x02 if proto == 6 else None))


def test_a_thousand_rules_first_match_wins_to_the_last_rule(guard):
    plan = thousand_rules()
    assert len(plan.xdp.rules) == 1000
    frames = [frame("198.51.100.7", 6, 1999), frame("198.51.100.7", 17, 1998),
              frame("192.0.2.9", 6, 1999), frame("198.51.100.7", 6, 1501),
              frame("198.51.100.7", 6, 2000), frame("198.51.100.7", 17, 1000)]
    compare(guard, plan, [(f, 0) for f in frames])
    counters = guard.counters()
    assert counters[999].dropped == 1 and counters[998].dropped == 1 and counters[0].dropped == 1


def test_dropped_packets_are_sampled_with_their_headers(guard):
    plan = compile(parse('policy "s"\ndefault pass\ndrop udp dport 53 from 203.0.113.0/24'))
    apply_plan(guard, plan)
    with RingBuffer(guard.object.map("g_samples")) as ring:
        ring.drain()
        time.sleep(0.01)  # the sample budget refills (2,000/s): earlier tests may have spent it
        for last in (5, 6, 7):
            guard.program.test_run(frame(f"203.0.113.{last}", 17, 53))
        guard.program.test_run(frame("192.0.2.5", 17, 53))  # passed: no sample
        samples = [GuardSample.from_buffer_copy(r) for r in ring.drain()]
    assert [bytes(s.src[:4]) for s in samples] == [bytes([203, 0, 113, n]) for n in (5, 6, 7)]
    assert {(s.rule, s.proto, s.dport, s.family) for s in samples} == {(0, 17, 53, 0)}


def test_without_native_xdp_the_guard_falls_back_to_generic_and_says_so(guard, veth_lab):
    with in_netns(veth_lab.ns):  # loopback has no native XDP
        with Link.attach_xdp(guard.program, "lo", XdpMode.AUTO) as link:
            assert link.mode is XdpMode.GENERIC
            assert "native XDP unavailable" in link.fallback_reason
        with Link.attach_xdp(guard.program, veth_lab.iface, XdpMode.AUTO) as link:
            assert link.mode is XdpMode.NATIVE and link.fallback_reason is None


@pytest.mark.parametrize("bad", ["1.2", "10.0.0.0/33", "2001:db8::/129", "host.example", "10.0.0.1/"])
def test_a_bad_list_entry_is_named_and_nothing_is_applied(guard, bad):
    plan = compile(parse('policy "l"\ndefault pass\nset deny { list "deny" }\ndrop from @deny'))
    apply_plan(guard, plan, {"deny": ["10.0.0.1"]})
    generation = guard.generation
    with pytest.raises(ValueError, match=f"{bad!r}"):
        apply_plan(guard, plan, {"deny": ["10.0.0.2", bad]})
    assert guard.generation == generation
    assert guard.program.test_run(frame("10.0.0.1", 6, 22)).retval == 1  # still dropped


def test_a_packed_list_alone_in_a_set_loads_its_host_keys_from_the_buffer():
    from bpf import guard_tables as gt
    from bpf.guard_plan import merge, split_entries
    from rules_dsl.addresses import Packed

    hosts = [f"10.0.{i // 256}.{i % 256}" for i in range(1000)]
    packed = Packed(hosts + ["10.9.0.0/16", "2001:db8::1"])
    alone = {3: merge(split_entries(()), split_entries(packed))}
    [(mask, keys)] = gt.host_groups(alone, "v4")
    assert mask == 1 << 3 and keys is packed.table("v4_hosts")  # the same buffer, no ints
    with_inline = merge(split_entries(["198.51.100.0/24"]), split_entries(packed))
    assert with_inline.packed.table("v4_hosts") is packed.table("v4_hosts")
    decoded = {3: gt.AddressSet.of(hosts + ["10.9.0.0/16", "2001:db8::1/128"])}
    assert alone[3] == decoded[3]
    shared = {**alone, 5: split_entries(hosts[:10])}
    assert gt.host_masks(shared, "v4") == {**gt.host_masks(alone, "v4"),
                                           **{int(ipaddress.ip_address(h)): 1 << 3 | 1 << 5 for h in hosts[:10]}}
    assert gt.host_masks(alone, "v6") == {int(ipaddress.ip_address("2001:db8::1")): 1 << 3}


def test_the_read_only_view_of_the_pins_reads_what_the_guard_counts(pin_dir):
    """`bulwark agent status` reads pinned counters through PinnedView, never a copy of the
    guard's reading: both agree, generation included, after packets and after a flip."""
    from bpf.errors import NotFound
    from bpf.guard import Guard, PinnedView

    plan = compile(parse('policy "v"\ndefault pass\ndrop udp dport 53\n'))
    with Guard() as g:
        g.pin_maps(pin_dir)
        apply_plan(g, plan)
        for f in (frame("192.0.2.9", 17, 53), frame("192.0.2.9", 17, 54), frame("192.0.2.9", 17, 53)):
            g.program.test_run(f)
        with PinnedView(pin_dir) as view:
            assert view.generation == g.generation
            assert view.counters() == g.counters() != {}
            apply_plan(g, plan)  # a new generation starts from zero
            assert view.generation == g.generation and view.counters() == g.counters() == {}
    with pytest.raises(NotFound, match="no guard maps pinned"):
        PinnedView(pin_dir + "/nothing-here")

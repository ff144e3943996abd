"""The reference evaluator: order of decision, token bucket arithmetic, monitor mode."""
from __future__ import annotations

import ipaddress

from rules_dsl import Packet, evaluate
from rules_dsl.evaluate import NS

from .helpers import plan, tcp, udp

P = plan('policy "t"\ndefault drop\nmalformed pass\n'
         "set bad { list \"ban\" }\n"
         "drop from @bad\n"
         "pass udp dport 53 limit 2/second burst 3 per src ipv4/24 block 10s\n"
         "pass tcp dport 80 limit 100 bytes/second burst 1500 bytes global\n"
         "pass tcp dport 22\n")


def test_order_malformed_then_non_ip_then_rules_then_default():
    d, _ = evaluate(P, Packet(l3="ipv4", malformed=True), None, 0)
    assert (d.verdict, d.rule, d.reason) == ("pass", None, "malformed")
    d, _ = evaluate(P, Packet(), None, 0)
    assert (d.verdict, d.rule, d.reason) == ("pass", None, "non-ip")
    d, _ = evaluate(P, tcp("192.0.2.1", "192.0.2.2", dport=22), None, 0)
    assert (d.verdict, d.rule) == ("pass", 3)
    d, _ = evaluate(P, tcp("192.0.2.1", "192.0.2.2", dport=23), None, 0)
    assert (d.verdict, d.rule, d.reason) == ("drop", None, "default")


def test_hub_lists_come_from_the_caller():
    pkt = tcp("203.0.113.5", "192.0.2.2", dport=22)
    assert evaluate(P, pkt, None, 0)[0].rule == 3
    assert evaluate(P, pkt, None, 0, lists={"ban": ["203.0.113.0/24"]})[0].rule == 0


def test_token_bucket_burst_refill_and_block_per_key_prefix():
    state, out = None, []
    for i in range(4):   # burst 3 at t=0, then over
        d, state = evaluate(P, udp(f"192.0.2.{i}", "198.51.100.1"), state, 0)
        out.append(d.reason)
    assert out == ["limit", "limit", "limit", "over-limit"]
    # same /24 key is blocked for 10 s, whatever the refill
    d, state = evaluate(P, udp("192.0.2.9", "198.51.100.1"), state, 9 * NS)
    assert d.reason == "blocked" and d.verdict == "drop"
    d, state = evaluate(P, udp("192.0.3.9", "198.51.100.1"), state, 9 * NS)
    assert d.reason == "limit"   # another /24, its own bucket
    d, state = evaluate(P, udp("192.0.2.9", "198.51.100.1"), state, 10 * NS)
    assert d.reason == "limit"   # block over at now == blocked_until; refilled to burst


def test_refill_is_exact_integer_arithmetic():
    state = None
    for _ in range(3):
        _, state = evaluate(P, udp("10.0.0.1", "10.0.0.2"), state, 0)
    # at 2/s one token takes 0.5 s: at 499_999_999 ns there is not yet one
    d, s2 = evaluate(P, udp("10.0.0.1", "10.0.0.2"), state, NS // 2 - 1)
    assert d.reason == "over-limit"
    d, _ = evaluate(P, udp("10.0.0.1", "10.0.0.2"), state, NS // 2)
    assert d.reason == "limit"


def test_byte_rates_charge_the_packet_length():
    d, state = evaluate(P, tcp("10.0.0.1", "10.0.0.2", dport=80, length=1500), None, 0)
    assert d.reason == "limit"
    d, state = evaluate(P, tcp("10.9.0.1", "10.0.0.2", dport=80, length=40), state, 0)
    assert d.reason == "over-limit"   # global key, bucket empty
    d, state = evaluate(P, tcp("10.9.0.1", "10.0.0.2", dport=80, length=40), state, NS * 4 // 10)
    assert d.reason == "limit"        # 0.4 s refills 40 bytes


def test_state_is_an_immutable_value():
    _, s1 = evaluate(P, udp("10.0.0.1", "10.0.0.2"), None, 0)
    _, s2 = evaluate(P, udp("10.0.0.1", "10.0.0.2"), s1, 0)
    assert s1 != s2 and len(s1) == len(s2) == 1
    assert evaluate(P, udp("10.0.0.1", "10.0.0.2"), s1, 0)[1] == s2


def test_monitor_mode_passes_and_says_what_it_would_do():
    m = plan('policy "t"\ndefault drop\nmode monitor\npass tcp dport 22\n')
    d, _ = evaluate(m, tcp("10.0.0.1", "10.0.0.2", dport=23), None, 0)
    assert (d.verdict, d.would_drop, d.rule) == ("pass", True, None)


def test_port_and_flag_matchers_never_match_non_first_fragments():
    f = plan('policy "t"\ndefault pass\ndrop udp dport 0-65535\ndrop fragment\n')
    later = Packet("ipv4", ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("10.0.0.2"),
                   17, None, None, None, 100, True, False, ttl=64)
    assert evaluate(f, later, None, 0)[0].rule == 1

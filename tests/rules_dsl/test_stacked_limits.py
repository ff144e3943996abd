"""Stacked limits: several limits on one rule, a packet passes within all of them."""
from __future__ import annotations

import dataclasses
import ipaddress
import json

import pytest

import rules_dsl
from rules_dsl import Plan, evaluate
from rules_dsl.evaluate import NS, Bucket
from rules_dsl.explain import explain
from rules_dsl.packet import LENGTH_MAX, Packet, build_frame, parse_frame

from .helpers import HEADER, diags, messages, plan, udp

STACKED = (HEADER + "pass udp dport 53 limit 1/second burst 2 per src"
           " limit 1/second burst 3 global\n")


def test_a_rule_takes_several_limits_in_order():
    r = rules_dsl.parse(STACKED).rules[0]
    assert [(lim.burst, lim.key.kind) for lim in r.limits] == [(2, "src"), (3, "global")]
    assert rules_dsl.fmt(rules_dsl.parse(STACKED)).count("limit") == 2
    x = plan(STACKED).xdp
    assert x.rules[0].action == "limit" and x.rules[0].rate_profiles == (0, 1)
    assert [p.key for p in x.rate_profiles] == ["src", "global"]


def test_the_same_limit_on_two_rules_is_one_profile():
    x = plan(HEADER + "pass udp dport 53 limit 5/second limit 9/second global\n"
             "pass udp dport 54 limit 9/second global\n").xdp
    assert x.rules[0].rate_profiles == (0, 1) and x.rules[1].rate_profiles == (1,)


def test_a_packet_passes_within_all_limits_and_a_refusal_stops_the_walk():
    p, state, out = plan(STACKED), None, []
    for src in ["192.0.2.1"] * 3 + ["192.0.2.2"] * 2:
        d, state = evaluate(p, udp(src, "198.51.100.1"), state, 0)
        out.append((d.verdict, d.reason))
    # A, A pass; the third A is over its source limit, the global one is not charged for
    # it: B passes on the global's last token, then B's second is refused by the global
    assert out == [("pass", "limit")] * 2 + [("drop", "over-limit"), ("pass", "limit"),
                                              ("drop", "over-limit")]
    key = lambda j, k: (0, j, k)  # noqa: E731
    b = int(ipaddress.ip_address("192.0.2.2"))
    assert state[key(0, ("src", 4, b))] == Bucket(0, 0, 0)   # charged although dropped later
    assert state[key(1, ("global",))] == Bucket(0, 0, 0)
    a = int(ipaddress.ip_address("192.0.2.1"))
    assert state[key(0, ("src", 4, a))] == Bucket(0, 0, 0)
    d, _ = evaluate(p, udp("192.0.2.2", "198.51.100.1"), state, NS)
    assert d.verdict == "pass"   # one second refills one token in both buckets


def test_a_blocked_limit_drops_before_the_later_ones_are_charged():
    p = plan(HEADER + "pass udp limit 1/second burst 1 block 1m limit 10/second burst 10 global\n")
    state = None
    for _ in range(3):
        d, state = evaluate(p, udp("192.0.2.1", "198.51.100.1"), state, 0)
    assert d.reason == "blocked"
    assert state[(0, 1, ("global",))].tokens == 9 * NS   # only the first packet reached it


@pytest.mark.parametrize("body, severity, message", [
    ("pass udp limit 5/second limit 5/second", "error", "this limit repeats limit 1 of the rule"),
    ("pass udp limit 5/second limit 6/second", "warning",
     "limit 1 of the rule is as strict on the same key and comes first"),
    ("pass udp limit 1/s limit 2/s limit 3/s limit 4/s limit 5/s", "error",
     "more than 4 limits on one rule"),
    ("drop udp limit 5/second limit 6/second global", "error", "'drop' takes no limit"),
])
def test_the_checker_on_stacked_limits(body, severity, message):
    assert any(m.startswith(message) for m in messages(HEADER + body + "\n", severity)), \
        diags(HEADER + body + "\n")


@pytest.mark.parametrize("body", [
    "pass udp limit 6/second limit 5/second",               # the later is stricter
    "pass udp limit 5/second limit 6/second global",        # another key
    "pass udp limit 5/second limit 6 kbytes/second",        # another unit
    "pass udp limit 5/second burst 50 limit 50/second burst 5",   # sustained and peak
])
def test_limits_that_each_can_refuse_are_not_reported(body):
    assert [d for d in diags(HEADER + body + "\n") if "limit" in d.message] == []


def test_thousands_of_limits_on_one_rule_are_one_located_error():
    found = diags(HEADER + "pass udp" + " limit 5/second" * 5000 + "\n")
    errors = [d for d in found if d.severity == "error"]
    over = [d for d in errors if d.message.startswith("more than 4 limits")]
    assert len(over) == 1 and over[0].line == 3 and over[0].col == 10 + 15 * 4
    assert len([d for d in errors if "repeats" in d.message]) == 3   # among the first four


def test_explain_names_every_limit():
    text = explain(rules_dsl.parse(STACKED), plan(STACKED))
    assert "bursts of 2) per source" in text and "bursts of 3) in total" in text
    assert "over any of them is dropped" in text


def test_schema_1_plans_still_load_byte_for_byte():
    v2 = json.loads(plan(HEADER + "pass udp limit 5/second\npass tcp\n").to_json())
    v1 = dict(v2, schema_version=1)
    v1["xdp"] = dict(v2["xdp"], rules=[
        {**{k: v for k, v in r.items() if k != "rate_profiles"},
         "rate_profile": r["rate_profiles"][0] if r["rate_profiles"] else None}
        for r in v2["xdp"]["rules"]])
    text = rules_dsl.plan.canonical_json(v1)
    p = Plan.from_json(text)
    assert p.to_json() == text and p.xdp.rules[0].rate_profiles == (0,)
    assert p.xdp.rules[1].rate_profiles == ()


def test_a_length_over_65535_matches_as_65535():
    """Generic XDP on GRO traffic hands the guard super-packets; the guard's range lookup
    clamps their length to GUARD_LENGTH_MAX and so does the evaluator."""
    p = plan(HEADER + "drop length > 1400\n")
    frame = build_frame(Packet("ipv4", ipaddress.ip_address("192.0.2.1"),
                               ipaddress.ip_address("192.0.2.2"), 6, 1, 2, 0x10, 1500, ttl=64))
    big = parse_frame(frame + bytes(70_000 - len(frame)))
    assert big.length == 70_000 - 14 and big.match_length == LENGTH_MAX
    assert evaluate(p, big)[0].verdict == "drop"
    assert evaluate(plan(HEADER + "drop length 65535\n"), big)[0].verdict == "drop"
    small = dataclasses.replace(big, length=1400)
    assert evaluate(p, small)[0].verdict == "pass"

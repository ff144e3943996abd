"""The checker: semantic errors, warnings, lockout guard."""
from __future__ import annotations

from pathlib import Path

import pytest

import rules_dsl
from rules_dsl import Management

from .helpers import HEADER, diags, messages


@pytest.mark.parametrize("body, message, hint", [
    ("set admins { 192.0.2.0/24 }\npass from @admin", "unknown set '@admin'", "did you mean '@admins'?"),
    ("pass tcp dport 70000", "port 70000 is out of range", "0..65535"),
    ("pass tcp dport 90-80", "backwards", "80-90"),
    ("pass from 192.0.2.1/24", "'192.0.2.1/24' has host bits set", "did you mean '192.0.2.0/24'?"),
    ("pass from 2001:db8::1/32", "host bits set", "did you mean '2001:db8::/32'?"),
    ("pass from 192.0.2.0/24 to 2001:db8::/32", "IPv4 and IPv6 are mixed", "split"),
    ("pass icmp from 2001:db8::/32", "IPv4 and IPv6 are mixed", None),
    ("pass udp dport 53 limit 0/second", "a rate of zero", None),
    ("pass limit 10/minute", "per second", None),
    ("pass dport 22", "'dport' needs the protocol to be tcp or udp", "add 'tcp' before 'dport'"),
    ("pass udp flags syn", "'flags' needs the protocol to be tcp", None),
    ("pass tcp flags syn/ack", "'syn' is in the value but not in the mask", "syn/ack|syn"),
    ("pass proto { icmp, icmpv6 } type echo-request", "different number in ICMP and ICMPv6", None),
    ("pass icmp type echo-reqest", "unknown ICMP type", "did you mean 'echo-request'?"),
    ("pass proto tpc", "unknown protocol 'tpc'", "did you mean 'tcp'?"),
    ("drop tcp limit 1/second", "'drop' takes no limit", None),
    ("set p { 80 }\npass from @p", "'@p' is a set of ports, used here as addresss", None),
    ("pass length 10-5", "can never hold", None),
    ("stateful { drop from { list \"x\" } }", None, None),
    ("set l { list \"x\" }\nstateful { drop from @l }", "hub-managed lists", None),
    ("stateful { synproxy udp dport 53 }", "synproxy needs 'tcp'", None),
    ("stateful { pass tcp dport 22 rate over 5/minute per src }", "go with 'drop'", None),
])
def test_semantic_errors(body, message, hint):
    text = HEADER + body + "\n"
    found = [d for d in diags(text) if d.severity == "error"]
    if message is None:  # a syntax error is fine too: only no traceback matters
        assert found
        return
    assert any(message in d.message for d in found), [d.message for d in found]
    if hint:
        d = next(d for d in found if message in d.message)
        assert hint in (d.hint or ""), d.render()


def test_missing_name_and_default_are_errors():
    assert set(messages("pass tcp")) == {"the policy has no name", "the policy has no default verdict"}


def test_data_plane_limits():
    rules = "".join(f"drop tcp dport {i}\n" for i in range(1, 1026))
    assert any("more than 1024 rules" in m for m in messages(HEADER + rules))
    sets = "".join(f"drop from 10.0.{i}.0/24\n" for i in range(65))
    assert any("more than 64 address sets" in m for m in messages(HEADER + sets))
    assert not messages(HEADER + "".join(f"drop from 10.0.{i}.0/24\n" for i in range(64)))


@pytest.mark.parametrize("body, message", [
    ("drop tcp\ndrop tcp dport 22", "the rule on line 3 takes every packet"),
    ("drop tcp dport 22\ndrop tcp dport 22", "repeats the rule on line 3"),
    ("drop from 10.0.0.0/8\npass tcp from 10.1.0.0/16 dport 1-100", "takes every packet"),
    ("drop tcp flags syn\ndrop tcp flags syn/syn|ack", "takes every packet"),
    ("set e { }\ndrop from @e", "uses an empty set"),
])
def test_warnings(body, message):
    found = messages(HEADER + body, "warning")
    assert any(message in m for m in found), found


def test_no_warning_when_a_rule_is_only_partly_covered():
    assert not messages(HEADER + "drop tcp dport 22\ndrop tcp dport 22-23", "warning")


def test_empty_and_unused_sets_warn():
    found = messages(HEADER + "set e { }\nset u { 192.0.2.1 }", "warning")
    assert "set 'e' is empty: rules using it never match" in found
    assert "set 'u' is never used" in found


def test_default_drop_without_a_pass_for_established_traffic_warns():
    text = 'policy "t"\ndefault drop\npass tcp dport 80\n'
    assert any("replies to connections" in m for m in messages(text, "warning"))
    # ACKs alone are not enough: the SYN-ACK of the server's own connections is a reply too.
    assert any("SYN-ACK" in m for m in messages(text + "pass tcp flags ack/syn|ack\n", "warning"))
    assert not any("replies to connections" in m for m in
                   messages(text + "pass tcp flags ack/ack\n", "warning"))



def test_filters_before_the_established_pass_do_not_hide_it():
    """A deny list or an odd-flags drop before the pass drops only some replies."""
    text = ('policy "t"\ndefault drop\nset bad { 192.0.2.0/24 }\ndrop from @bad\n'
            "drop tcp flags { null, xmas }\ndrop ttl < 2\npass tcp flags ack/ack\n")
    assert not any("replies to connections" in m for m in messages(text, "warning"))
    hidden = 'policy "t"\ndefault drop\ndrop tcp\npass tcp flags ack/ack\n'
    assert any("replies to connections" in m for m in messages(hidden, "warning"))

MGMT = Management("203.0.113.1", 443, 22, ("198.51.100.0/24",))
SAFE = ('policy "t"\ndefault drop\npass tcp from 203.0.113.1 sport 443\n'
        "pass tcp from 198.51.100.0/24 dport 22\npass tcp flags ack/ack\n")


def test_lockout_guard_passes_a_policy_that_keeps_management_open():
    assert messages(SAFE, management=MGMT) == []


@pytest.mark.parametrize("example", sorted((Path(__file__).parents[2] / "examples").glob("*.bw")),
                         ids=lambda p: p.name)
def test_every_example_can_be_deployed_from_a_hub(example):
    """The hub's SYN-ACK and ACKs are replies the examples pass (`flags ack/ack`)."""
    checked = rules_dsl.load(example.read_text(), example.name, Management("192.0.2.10", 8080))
    assert checked.plan is not None, [d.render() for d in checked.diagnostics]


@pytest.mark.parametrize("policy, fault", [
    ('policy "t"\ndefault drop\npass tcp flags ack/syn|ack\n', "default verdict drops"),
    ('policy "t"\ndefault pass\ndrop tcp dport 22\n', "drops SSH (port 22) from 198.51.100.0/24"),
    ('policy "t"\ndefault pass\ndrop from 198.51.0.0/16\n', "drops SSH"),
    ('policy "t"\ndefault pass\ndrop tcp from 203.0.113.0/24 sport 443\n', "drops the hub"),
    ('policy "t"\ndefault pass\ndrop tcp length > 1000\n', "drops"),
    ('policy "t"\ndefault pass\nstateful { drop tcp dport 22 }\n', "drops SSH"),
])
def test_lockout_guard_refuses_policies_that_drop_management(policy, fault):
    found = messages(policy, management=MGMT)
    assert any(fault in m and "lock the operator out" in m for m in found), found
    checked = rules_dsl.load(policy, "t.bw", MGMT)
    assert checked.plan is None


def test_lockout_guard_can_be_overridden_explicitly_and_monitor_mode_drops_nothing():
    text = 'policy "t"\ndefault pass\ndrop tcp dport 22\n'
    assert not messages(text + "lockout-guard off\n", management=MGMT)
    assert any("lockout-guard off" in m for m in
               messages(text + "lockout-guard off\n", "warning", management=MGMT))
    assert not messages(text + "mode monitor\n", management=MGMT)


def test_a_rate_limit_on_management_is_a_warning():
    text = 'policy "t"\ndefault pass\npass tcp dport 22 limit 5/second\n'
    assert not messages(text, management=MGMT)
    assert any("rate-limits SSH" in m for m in messages(text, "warning", management=MGMT))


def test_compile_refuses_errors():
    with pytest.raises(rules_dsl.CheckError) as info:
        rules_dsl.compile(rules_dsl.parse(HEADER + "pass from @nope"))
    assert "unknown set" in info.value.diagnostics[0].message

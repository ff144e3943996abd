"""Properties: fmt round-trips, compile is deterministic, no input raises anything but
DslError, and the shadowing warning agrees with the evaluator."""
from __future__ import annotations

import ipaddress

from hypothesis import given, strategies as st

import rules_dsl
from rules_dsl import DslError, Packet, nodes as n
from rules_dsl.check import check_resolved, shadowed
from rules_dsl.vocab import PORT_NAMES

NAMES = st.sampled_from(["web", "admins", "bad_hosts", "x-1", "pass", "list"])
ADDRS = st.sampled_from(["192.0.2.0/24", "192.0.2.7", "10.0.0.0/8", "2001:db8::/32",
                         "2001:db8::1", "::/0", "0.0.0.0/0"])
PORT = st.integers(0, 65535)
pos = n.NOPOS


def addr_items():
    return st.lists(st.one_of(ADDRS.map(n.Addr), NAMES.map(n.SetRef)), min_size=1, max_size=3).map(tuple)


def port_items():
    rng = st.tuples(PORT, PORT).map(lambda t: n.PortRange(min(t), max(t)))
    return st.lists(st.one_of(rng, st.sampled_from(sorted(PORT_NAMES)).map(n.PortName),
                              NAMES.map(n.SetRef)), min_size=1, max_size=3).map(tuple)


FLAGS = st.lists(st.sampled_from(["syn", "ack", "fin", "rst", "psh", "urg"]), min_size=1,
                 max_size=3, unique=True).map(tuple)
COMBO = st.one_of(st.builds(n.FlagCombo, FLAGS, st.none() | FLAGS),
                  st.sampled_from(["null", "xmas"]).map(lambda x: n.FlagCombo((x,))))
CMP = st.one_of(st.builds(lambda a: n.Cmp("=", a), st.integers(0, 255)),
                st.builds(lambda a, b: n.Cmp("-", a, b), st.integers(0, 255), st.integers(0, 255)),
                st.builds(n.Cmp, st.sampled_from(["<", "<=", ">", ">="]), st.integers(0, 255)))
PROTOS = st.lists(st.one_of(st.sampled_from(["tcp", "udp", "icmp", "icmpv6", "gre"]),
                            st.integers(0, 255)).map(n.Proto), min_size=1, max_size=3).map(tuple)
KEY = st.one_of(st.none(), st.just(n.Key("global")),
                st.builds(n.Key, st.sampled_from(["src", "dst"]), st.none() | st.integers(0, 32),
                          st.none() | st.integers(0, 128)))
LIMIT = st.builds(n.Limit, st.integers(0, 10**6), st.sampled_from(["packets", "bytes", "mbytes"]),
                  st.sampled_from(["second", "minute"]), st.none() | st.integers(0, 10**6),
                  st.none() | st.sampled_from(["packets", "kbytes"]), KEY,
                  st.none() | st.integers(0, 10**6)).map(
    lambda lim: lim if lim.burst is not None else
    n.Limit(lim.rate, lim.unit, lim.per, None, None, lim.key, lim.block_s))
VERDICT = st.sampled_from(["pass", "drop"]).map(n.Word)
RULE = st.builds(n.Rule, VERDICT, st.none() | addr_items(), st.none() | addr_items(),
                 st.none() | PROTOS, st.none() | port_items(), st.none() | port_items(),
                 st.none() | st.lists(COMBO, min_size=1, max_size=2).map(tuple),
                 st.none() | CMP, st.none() | st.sampled_from(["yes", "no"]).map(n.Word),
                 st.none() | st.lists(st.one_of(st.integers(0, 255), st.just("echo-request"))
                                      .map(n.IcmpType), min_size=1, max_size=2).map(tuple),
                 st.none() | CMP, st.lists(LIMIT, max_size=3).map(tuple))
SRULE = st.builds(n.StatefulRule, st.sampled_from(["pass", "drop", "synproxy"]).map(n.Word),
                  st.none() | addr_items(), st.none(), st.none() | PROTOS, st.none(),
                  st.none() | port_items(),
                  st.none() | st.lists(st.sampled_from(["new", "established", "invalid"])
                                       .map(n.Word), min_size=1, max_size=2).map(tuple),
                  st.none() | st.builds(n.CtRate, st.integers(1, 99),
                                        st.sampled_from(["second", "minute"]),
                                        st.none() | st.integers(1, 9)),
                  st.none() | st.integers(1, 99), st.none() | st.integers(536, 9000),
                  st.none() | st.integers(0, 14), st.booleans(), st.booleans()).map(
    lambda r: r if r.action.value == "synproxy" else
    n.StatefulRule(r.action, r.src, r.dst, r.proto, r.sport, r.dport, r.ct_state, r.rate,
                   r.connections))
SET = st.builds(n.SetDecl, NAMES, st.lists(st.one_of(
    ADDRS.map(n.Addr), st.sampled_from(["crowdsec", "a b"]).map(n.ListRef),
    st.tuples(PORT, PORT).map(lambda t: n.PortRange(min(t), max(t)))), max_size=3).map(tuple))
SPEC = st.one_of(
    st.builds(n.PacketSpec, st.just("ip"), st.sampled_from(["tcp", "udp", 1, "icmpv6"]),
              st.sampled_from(["192.0.2.1", "2001:db8::1"]), st.none() | PORT,
              st.sampled_from(["198.51.100.1", "2001:db8::2"]), st.none() | PORT,
              st.none() | FLAGS, st.none() | st.integers(0, 2000), st.none() | st.integers(0, 255),
              st.none() | st.sampled_from(["echo-request", 3]),
              st.none() | st.sampled_from(["first", "later"])),
    st.sampled_from(["non-ip", "malformed"]).map(n.PacketSpec))
EXPECT = st.builds(n.Expect, VERDICT, SPEC, st.none() | st.integers(1, 50),
                   st.none() | st.integers(0, 10**7))
POLICY = st.builds(
    n.Policy, st.none() | st.sampled_from(["web", "a policy", "x-y"]).map(n.Word),
    st.none() | VERDICT, st.none() | st.sampled_from(["enforce", "monitor"]).map(n.Word),
    st.none() | VERDICT, st.none() | st.sampled_from(["on", "off"]).map(n.Word),
    st.lists(SET, max_size=3).map(tuple), st.lists(RULE, max_size=4).map(tuple),
    st.lists(SRULE, max_size=3).map(tuple),
    st.lists(st.builds(n.TestList, st.sampled_from(["crowdsec", "x"]),
                       st.lists(ADDRS.map(n.Addr), max_size=2).map(tuple)), max_size=2).map(tuple),
    st.lists(EXPECT, max_size=3).map(tuple))


@given(POLICY)
def test_parse_of_fmt_is_the_policy(policy):
    text = rules_dsl.fmt(policy)
    assert rules_dsl.parse(text) == policy
    assert rules_dsl.fmt(rules_dsl.parse(text)) == text


@given(POLICY)
def test_load_never_raises_and_compile_is_deterministic(policy):
    text = rules_dsl.fmt(policy)
    a, b = rules_dsl.load(text), rules_dsl.load(text)
    assert a.diagnostics == b.diagnostics
    if a.plan is not None:
        assert a.plan.to_json() == b.plan.to_json() and a.plan.digest == b.plan.digest
        assert rules_dsl.Plan.from_json(a.plan.to_json()) == a.plan


@given(st.text(max_size=300))
def test_random_text_raises_only_dsl_errors(text):
    try:
        rules_dsl.parse(text)
    except DslError as exc:
        assert exc.diagnostics and all(d.render() for d in exc.diagnostics)
    rules_dsl.load(text)


TOKENS = st.sampled_from([
    "policy", "default", "mode", "malformed", "lockout-guard", "set", "pass", "drop", "from",
    "to", "any", "tcp", "udp", "icmp", "icmpv6", "proto", "sport", "dport", "flags", "length",
    "ttl", "fragment", "type", "limit", "burst", "per", "global", "block", "stateful", "ct",
    "state", "rate", "over", "connections", "synproxy", "mss", "wscale", "timestamp",
    "sack-perm", "test", "list", "expect", "non-ip", "x", "at", "{", "}", ",", "/", "|", "-",
    "->", ":", "[", "]", "<", ">=", '"n"', "@web", "web", "syn", "ack", "src", "ipv6", "second",
    "0", "22", "99999", "1-2", "10m", "5ms", "192.0.2.1", "192.0.2.1/24", "2001:db8::/32",
    "::", "#c", "\n", "established", "yes", "monitor", "off", "ssh", "echo-request", "mbytes",
])


@given(st.lists(TOKENS, max_size=40))
def test_token_soup_raises_only_dsl_errors(tokens):
    text = " ".join(tokens)
    try:
        rules_dsl.parse(text)
    except DslError:
        pass
    rules_dsl.load(text, "soup.bw", rules_dsl.Management("192.0.2.1", 443, 22, ("10.0.0.0/8",)))


# ---- shadowing agrees with the evaluator --------------------------------------------------

SMALL_NETS = ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.3", "192.0.2.0/24", "2001:db8::/32"]
SMALL_ADDRS = ["10.1.2.3", "10.1.9.9", "10.9.9.9", "192.0.2.5", "203.0.113.1"]


@st.composite
def small_rule(draw):
    parts = [draw(st.sampled_from(["pass", "drop"]))]
    proto = draw(st.sampled_from([None, "tcp", "udp", "proto { tcp, udp }", "icmp"]))
    if proto:
        parts.append(proto)
    if draw(st.booleans()):
        nets = draw(st.lists(st.sampled_from(SMALL_NETS[:4]), min_size=1, max_size=2, unique=True))
        parts.append("from { " + ", ".join(nets) + " }")
    if proto in ("tcp", "udp", "proto { tcp, udp }") and draw(st.booleans()):
        lo = draw(st.integers(20, 25))
        parts.append(f"dport {lo}-{draw(st.integers(lo, 26))}")
    if proto == "tcp" and draw(st.booleans()):
        parts.append("flags " + draw(st.sampled_from(["syn", "syn/syn|ack", "ack", "{ null, xmas }",
                                                      "syn|fin"])))
    if proto == "icmp" and draw(st.booleans()):
        parts.append("type " + draw(st.sampled_from(["8", "{ 0, 8 }", "3"])))
    if draw(st.booleans()):
        parts.append("length " + draw(st.sampled_from(["< 100", "40-60", ">= 60"])))
    if draw(st.booleans()):
        parts.append("ttl " + draw(st.sampled_from(["< 10", "1-64", "64"])))
    if draw(st.booleans()):
        parts.append(draw(st.sampled_from(["fragment", "fragment no"])))
    if parts[0] == "pass":
        parts.extend(draw(st.lists(st.sampled_from(
            ["limit 1/second burst 1", "limit 2/second burst 3 global",
             "limit 1 kbytes/second burst 2000 bytes per src ipv4/24 block 1s"]),
            max_size=2, unique=True)))
    return " ".join(parts)


@st.composite
def small_packet(draw):
    proto = draw(st.sampled_from([6, 17, 1, 47]))
    frag = draw(st.sampled_from([(False, False), (True, True), (True, False)]))
    later = frag[0] and not frag[1]
    ports = proto in (6, 17) and not later
    return Packet("ipv4", ipaddress.ip_address(draw(st.sampled_from(SMALL_ADDRS))),
                  ipaddress.ip_address("192.0.2.1"), proto,
                  draw(st.integers(20, 26)) if ports else None,
                  draw(st.integers(19, 27)) if ports else None,
                  draw(st.sampled_from([0, 2, 0x10, 0x12, 0x03, 0x29])) if proto == 6 and not later else None,
                  draw(st.sampled_from([40, 59, 60, 99, 100, 1500])), frag[0], frag[1],
                  draw(st.sampled_from([0, 3, 8])) if proto == 1 and not later else None,
                  draw(st.sampled_from([1, 9, 10, 64, 65])))


@given(st.lists(small_rule(), min_size=1, max_size=8), st.lists(small_packet(), min_size=1, max_size=30))
def test_a_rule_reported_shadowed_never_decides_a_packet(rules, packets):
    policy = rules_dsl.parse('policy "s"\ndefault pass\n' + "\n".join(rules))
    res, diags = check_resolved(policy, None)
    if any(d.severity == "error" for d in diags):
        return
    never = set(shadowed(res.rules))
    plan = rules_dsl.compile(policy)
    state = None
    for p in packets:
        decision, state = rules_dsl.evaluate(plan, p, state, 0)
        assert decision.rule not in never, (rules, p, decision)

"""The nftables allowlist: every document the compiler writes passes, hostile ones fail."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rules_dsl
from rules_dsl.errors import PlanError
from rules_dsl.nft import monitor_nft
from rules_dsl.nft_allow import check_nft_document

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.bw"))
STATEFUL = [
    "pass ct state established,related", "drop ct state invalid",
    "drop tcp dport 22 rate over 10/minute burst 5 per src",
    "drop tcp dport 53 connections over 20 per src",
    "drop tcp dport { 465, 587 } rate over 30/second burst 10 per src",
    "synproxy tcp dport 443 mss 1460 wscale 7 timestamp sack-perm", "synproxy tcp dport 8443",
    "drop udp from 198.51.100.0/24 dport 1000-2000", "pass tcp from 2001:db8::/32 sport 443",
    "drop from 192.0.2.7 to 198.51.100.0/24", "drop proto udp", "drop tcp dport 25 rate over 5/hour per src",
    "drop tcp dport 26 rate over 5/day per src", "pass udp to 2001:db8::1 dport 53",
]


def _doc(body: list[str], mode: str = "enforce") -> dict:
    text = f'policy "t"\ndefault pass\nmode {mode}\nstateful {{\n' + "\n".join(body) + "\n}\n"
    checked = rules_dsl.load(text, "t.bw")
    assert checked.plan is not None, [d.render() for d in checked.diagnostics]
    return checked.plan.nft


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_document_passes_in_both_modes(example):
    doc = rules_dsl.load(example.read_text(), example.name).plan.nft
    check_nft_document(doc)
    check_nft_document(monitor_nft(doc))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(STATEFUL), min_size=0, max_size=6, unique=True),
       st.sampled_from(["enforce", "monitor"]))
def test_every_document_the_compiler_writes_passes(body, mode):
    check_nft_document(_doc(body, mode))


BASE = _doc(["synproxy tcp dport 443 mss 1460", "drop tcp dport 22 rate over 10/minute per src",
             "drop ct state invalid"])


def _with(change) -> dict:
    doc = copy.deepcopy(BASE)
    change(doc["nftables"])
    return doc


def _rule(expr, chain="input"):
    return {"add": {"rule": {"family": "inet", "table": "bulwark", "chain": chain, "expr": expr}}}


def _chain(**kw):
    return {"add": {"chain": {"family": "inet", "table": "bulwark", "name": "input",
                              "type": "filter", "hook": "input", "prio": 0, "policy": "accept", **kw}}}


HOSTILE = {
    "nat chain": (lambda c: c.append({"add": {"chain": {
        "family": "inet", "table": "bulwark", "name": "post", "type": "nat", "hook": "postrouting",
        "prio": 100, "policy": "accept"}}}), "chain 'post'"),
    "nat type on input": (lambda c: c.__setitem__(4, _chain(type="nat")), "type/hook/prio/policy"),
    "policy drop input": (lambda c: c.__setitem__(4, _chain(policy="drop")), "type/hook/prio/policy"),
    "other priority": (lambda c: c.__setitem__(4, _chain(prio=-500)), "type/hook/prio/policy"),
    "output hook": (lambda c: c.__setitem__(4, _chain(hook="output")), "type/hook/prio/policy"),
    "dup": (lambda c: c.append(_rule([{"dup": {"addr": "192.0.2.9"}}])), "statement 'dup'"),
    "queue": (lambda c: c.append(_rule([{"queue": {"num": 1}}])), "statement 'queue'"),
    "fwd": (lambda c: c.append(_rule([{"fwd": {"dev": "eth0"}}])), "statement 'fwd'"),
    "mangle": (lambda c: c.append(_rule([{"mangle": {"key": {"meta": {"key": "mark"}}, "value": 1}}])),
               "statement 'mangle'"),
    "jump": (lambda c: c.append(_rule([{"jump": {"target": "x"}}])), "statement 'jump'"),
    "reject": (lambda c: c.append(_rule([{"reject": None}])), "statement 'reject'"),
    "other table": (lambda c: c.append({"add": {"table": {"family": "ip", "name": "nat"}}}),
                    "only table inet bulwark"),
    "delete a chain": (lambda c: c.append({"delete": {"chain": {"family": "inet", "table": "bulwark",
                                                                 "name": "input"}}}), "only the table"),
    "flush ruleset": (lambda c: c.append({"flush": {"ruleset": None}}), "command 'flush'"),
    "map": (lambda c: c.append({"add": {"map": {"family": "inet", "table": "bulwark", "name": "m"}}}),
            "object kind 'map'"),
    "rule in an unknown chain": (lambda c: c.append(_rule([{"accept": None}], chain="forward")),
                                 "was not added"),
    "drop in prerouting": (lambda c: c.append(_rule([{"drop": None}], chain="prerouting")),
                           "prerouting chain only"),
    "verdict then more": (lambda c: c.append(_rule([{"accept": None}, {"counter": None}])),
                          "nothing may follow"),
    "meta mark": (lambda c: c.append(_rule([{"match": {"op": "==", "left": {"meta": {"key": "mark"}},
                                                       "right": 1}}, {"accept": None}])), "only meta l4proto"),
    "set of other key": (lambda c: c.append(_rule([{"set": {"op": "update", "elem": {"payload": {
        "protocol": "ip", "field": "daddr"}}, "set": "@rate1_v4", "stmt": [{"limit": {
            "rate": 1, "per": "second", "burst": 1, "inv": True}}]}}, {"drop": None}])), "source address"),
    "huge comment": (lambda c: c.append({"add": {"rule": {**_rule([{"accept": None}])["add"]["rule"],
                                                          "comment": "x" * 10_000}}}), "at most 120"),
    "oversized": (lambda c: c.extend([_rule([{"accept": None}])] * 10_000), "commands"),
    "nested": (lambda c: c.append(_rule([{"match": {"op": "==", "left": {"payload": {
        "protocol": "ip", "field": "saddr"}}, "right": {"set": [{"set": [{"set": []}]}]}}}])), "not allowed here: set"),
    "bad port": (lambda c: c.append(_rule([{"match": {"op": "==", "left": {"payload": {
        "protocol": "tcp", "field": "dport"}}, "right": 70000}}, {"drop": None}])), "0..65535"),
    "not a list": (lambda c: c.__setitem__(slice(None), [[]]), "one command object"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_documents_are_refused_with_the_reason(name):
    change, reason = HOSTILE[name]
    check_nft_document(BASE)
    with pytest.raises(PlanError) as info:
        check_nft_document(_with(change))
    assert reason in str(info.value), str(info.value)


@pytest.mark.parametrize("doc", [None, [], "x", {"nftables": {}}, {"nftables": [], "extra": 1}])
def test_malformed_documents_are_refused(doc):
    with pytest.raises(PlanError):
        check_nft_document(doc)


JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.text(max_size=8)
                    | st.sampled_from(["add", "rule", "chain", "inet", "bulwark", "input", "drop"]),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.sampled_from(["nftables", "add", "rule", "chain", "expr", "match",
                                                       "family", "table", "name", "left", "right", "op"]),
                                      inner, max_size=4), max_leaves=30)


@settings(max_examples=60, deadline=None)
@given(JSON)
def test_arbitrary_json_is_refused_or_allowed_never_crashes(doc):
    try:
        check_nft_document(doc)
    except PlanError:
        pass


@settings(max_examples=60, deadline=None)
@given(st.integers(0, len(BASE["nftables"]) - 1), JSON)
def test_a_compiled_document_with_one_command_replaced_never_crashes(at, junk):
    doc = copy.deepcopy(BASE)
    doc["nftables"][at] = junk
    try:
        check_nft_document(doc)
    except PlanError:
        pass

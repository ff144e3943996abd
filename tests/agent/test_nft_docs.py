"""The table for switching both parts: the new table's chains and the old one's renamed,
as separate base chains (a packet must pass both), set references following the rename;
and a listed table turned back into a document."""
from __future__ import annotations

import json

from agent.nft_docs import both_tables, from_listing
from rules_dsl import load
from tests.agent.conftest import POLICY_A
from tests.rules_dsl.test_nft import STATEFUL

OLD = load(STATEFUL, "s.bw").plan.nft
NEW = load(POLICY_A, "a.bw").plan.nft


def adds(doc, kind):
    return [c["add"][kind] for c in doc["nftables"] if kind in c.get("add", {})]


def test_both_holds_every_chain_and_rule_of_each_table():
    both = both_tables(OLD, NEW)
    assert both["nftables"][:len(NEW["nftables"])] == NEW["nftables"]  # replaces the table, new first
    chains = {c["name"]: (c.get("hook"), c.get("prio")) for c in adds(both, "chain")}
    assert chains == {"input": ("input", 0), "input_was": ("input", 0), "prerouting_was": ("prerouting", -300)}
    old_rules = [(r["chain"] + "_was", r["comment"]) for r in adds(OLD, "rule")]
    assert [(r["chain"], r["comment"]) for r in adds(both, "rule")] == [
        (r["chain"], r["comment"]) for r in adds(NEW, "rule")] + old_rules
    sets = {s["name"] for s in adds(both, "set")}
    assert sets == {s["name"] + "_was" for s in adds(OLD, "set")}
    used = {e["set"]["set"] for r in adds(both, "rule") for e in r["expr"] if isinstance(e.get("set"), dict)}
    assert used and used <= {"@" + name for name in sets}
    assert sum(1 for c in both["nftables"] if "table" in c.get("add", {}) or "delete" in c) == 3  # one replace


def test_a_listing_becomes_a_document_again():
    listing = [{"metainfo": {"version": "1.0.6"}},
               {"table": {"family": "inet", "name": "bulwark", "handle": 4}},
               {"set": {"family": "inet", "name": "rate2_v4", "table": "bulwark", "handle": 3,
                        "type": "ipv4_addr", "elem": [{"elem": {"val": "192.0.2.9", "timeout": 120}}]}},
               {"rule": {"family": "inet", "table": "bulwark", "chain": "input", "handle": 7, "expr": [
                   {"set": {"op": "update", "elem": {"payload": {"protocol": "ip", "field": "saddr"}},
                            "set": "@rate2_v4"}},
                   {"counter": {"packets": 12, "bytes": 720}}, {"drop": None}]}}]
    doc = from_listing(listing)
    text = json.dumps(doc)
    assert "handle" not in text and "192.0.2.9" not in text and "metainfo" not in text
    rule = doc["nftables"][-1]["add"]["rule"]
    assert rule["expr"][0]["set"]["elem"] == {"payload": {"protocol": "ip", "field": "saddr"}}  # the key stays
    assert rule["expr"][1] == {"counter": None}

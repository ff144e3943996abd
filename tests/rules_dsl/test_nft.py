"""The nftables rendering in monitor mode: the same table, counting, dropping nothing —
whether the policy says `mode monitor` or the agent projects an enforce Plan for a
dry-run deployment (`monitor_nft`)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from rules_dsl.nft import DROPPING, monitor_nft

from .helpers import plan

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.bw"))
STATEFUL = '''policy "s"
default pass
stateful {
    pass ct state established,related
    drop ct state invalid
    drop tcp dport 22 rate over 10/minute burst 5 per src
    drop tcp dport 80 connections over 100 per src
    synproxy tcp dport 443 mss 1460 wscale 7 timestamp sack-perm
    drop from 2001:db8::/32 udp dport 53
}
'''
POLICIES = {"stateful": STATEFUL, **{p.name: p.read_text() for p in EXAMPLES}}


def in_mode(text: str, mode: str) -> str:
    lines = [x for x in text.splitlines(keepends=True) if not x.startswith("mode ")]
    at = next(i for i, x in enumerate(lines) if x.startswith("default "))
    return "".join([*lines[:at], f"mode {mode}\n", *lines[at:]])


def rules(doc: dict) -> list[dict]:
    return [c["add"]["rule"] for c in doc["nftables"] if "rule" in c.get("add", {})]


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_projection_of_enforce_is_the_monitor_policys_table(name):
    enforce = plan(in_mode(POLICIES[name], "enforce")).nft
    monitor = plan(in_mode(POLICIES[name], "monitor")).nft
    assert monitor_nft(enforce) == monitor
    assert monitor_nft(monitor) == monitor  # idempotent: a monitor policy deployed dry-run


def test_monitor_table_counts_what_enforce_drops_and_drops_nothing():
    enforce = plan(STATEFUL).nft
    monitor = monitor_nft(enforce)
    text = json.dumps(monitor)
    assert not any(f'"{verdict}"' in text for verdict in DROPPING) and "synproxy" not in json.dumps(
        [r["expr"] for r in rules(monitor)])
    assert not any(r["chain"] == "prerouting" for r in rules(monitor))
    dropping = [r for r in rules(enforce) if {"drop": None} in r["expr"] and not r["comment"].startswith("synproxy")]
    watched = {(r["comment"], json.dumps(r["expr"][:-1])) for r in dropping}
    kept = {(r["comment"], json.dumps(r["expr"])) for r in rules(monitor)}
    assert watched <= kept  # same matches, same counter, no verdict
    assert all({"counter": None} in r["expr"] for r in rules(monitor))
    # the accept rules still accept (they decide which packets later rules would see)
    assert any({"accept": None} in r["expr"] for r in rules(monitor))
    assert monitor["nftables"][:4] == enforce["nftables"][:4]  # still replaces the table in one batch

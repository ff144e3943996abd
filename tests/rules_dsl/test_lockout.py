"""The one lockout guard: both stages, list contents asked, never iterated."""
from __future__ import annotations

import dataclasses
import ipaddress
import json

import pytest

import rules_dsl
from rules_dsl import Management
from rules_dsl.lockout import Finding, judge_lockout

BLOCKED = "set bans { list \"blocked\" }\ndrop from @bans"
M = Management("203.0.113.5", 443, 22, ("198.51.100.0/24",))


def _plan(body: str, mode: str = "enforce"):
    checked = rules_dsl.load(f'policy "t"\ndefault pass\nmode {mode}\n{body}\n', "t.bw")
    assert checked.plan is not None, [d.render() for d in checked.diagnostics]
    return checked.plan


class OnlyContains:
    """A list as the agent's packed storage offers it: `in`, and nothing to iterate."""

    def __init__(self, *nets: str):
        self.nets = [ipaddress.ip_network(n) for n in nets]
        self.asked = 0

    def __contains__(self, addr) -> bool:
        assert isinstance(addr, (ipaddress.IPv4Address, ipaddress.IPv6Address))
        self.asked += 1
        return any(addr.version == n.version and addr in n for n in self.nets)

    def __iter__(self):
        raise AssertionError("the guard iterated over a list")

    def __len__(self):
        return 1_000_000


def test_a_plan_that_keeps_management_open_has_no_findings():
    assert judge_lockout(_plan("pass tcp flags ack/ack\ndrop tcp dport 23"), M) == ()


def test_the_xdp_stage_dropping_the_hubs_replies_is_found_with_its_rule():
    found = judge_lockout(_plan("pass tcp dport 22\ndrop tcp from 203.0.113.0/24 sport 443"), M)
    assert {(f.stage, f.kind, f.rule) for f in found} == {("xdp", "drop", 1)}
    assert "the hub at 203.0.113.5 port 443" in found[0].render()
    assert "drop tcp from 203.0.113.0/24 sport 443" in found[0].text


def test_the_nft_stage_dropping_ssh_is_found():
    found = judge_lockout(_plan("stateful { drop tcp dport 22 }"), M)
    assert {(f.stage, f.kind) for f in found} == {("nft", "drop")}
    assert all("SSH (port 22) from 198.51.100.0/24" in f.what for f in found)


def test_an_nft_rate_limit_on_ssh_is_a_limit_not_a_drop():
    found = judge_lockout(_plan("stateful { drop tcp dport 22 rate over 10/minute per src }"), M)
    assert found and {f.kind for f in found} == {"limit"}


def test_an_nft_policy_drop_chain_is_judged_too():
    plan = _plan("pass tcp flags ack/ack")
    doc = plan.nft
    doc["nftables"][4]["add"]["chain"]["policy"] = "drop"
    hostile = dataclasses.replace(plan, nft_json=json.dumps(doc), _cache={})
    found = judge_lockout(hostile, M)
    assert Finding("nft", "drop", None, "SSH (port 22) from 198.51.100.0/24") in found
    assert any(f.what.startswith("the hub") and f.rule is None for f in found)


@pytest.mark.parametrize("rule", [
    "drop tcp from 198.51.100.128/25 dport 22",     # only part of the admin prefix
    "drop tcp length 1000-1100",                    # only some lengths
    "drop tcp ttl < 10",                            # only some TTLs
    "drop tcp sport 1-1023 dport 22",               # only some source ports
    "drop tcp to 192.0.2.200",                      # only one of this server's addresses
    "pass tcp from 198.51.100.0/25 dport 22\ndrop tcp dport 22",   # passed for half of it
    "pass tcp to 192.0.2.0/24\ndrop tcp dport 22",                 # passed to some addresses
])
def test_rules_on_part_of_a_management_flow_are_found(rule):
    found = judge_lockout(_plan(rule), M)
    dropping = rule.count("\n")
    assert any(f.stage == "xdp" and f.kind == "drop" and f.rule == dropping for f in found), found


def test_list_contents_are_asked_a_few_times_and_never_iterated():
    plan = _plan(BLOCKED)
    clean, hit = OnlyContains("10.0.0.0/8"), OnlyContains("198.51.100.77/32", "198.51.0.0/16")
    assert judge_lockout(plan, M, {"blocked": clean}) == ()
    assert clean.asked <= 8
    found = judge_lockout(plan, M, {"blocked": hit})
    assert {(f.stage, f.rule) for f in found} == {("xdp", 0)}
    assert all(f.what.startswith("SSH") for f in found)


def test_a_list_the_plan_does_not_name_is_not_asked():
    other = OnlyContains("0.0.0.0/0")
    assert judge_lockout(_plan(BLOCKED), M, {"elsewhere": other}) == ()
    assert other.asked == 0


def test_monitor_plans_and_no_management_have_no_findings():
    assert judge_lockout(_plan("drop tcp dport 22", "monitor"), M) == ()
    assert judge_lockout(_plan("drop tcp dport 22"), None) == ()
    assert judge_lockout(_plan("drop tcp dport 22"), Management()) == ()


def test_ipv6_management_is_probed_in_its_family():
    m6 = Management("2001:db8:1::5", 8443, 22, ("2001:db8:2::/48",))
    found = judge_lockout(_plan("drop tcp from 2001:db8::/32"), m6)
    assert {f.what.split()[0] for f in found} == {"the", "SSH"}
    assert judge_lockout(_plan("drop tcp from 2001:db8::/32"), M) == ()


def test_the_work_is_bounded_for_a_policy_naming_many_edges(monkeypatch):
    """Hostile size: hundreds of prefixes inside the admin prefix and hundreds of port edges
    are probed at an even spread, a bounded number of packets per flow."""
    from rules_dsl import lockout

    inside = ", ".join(f"198.51.100.{i}" for i in range(1, 250))
    rules = "\n".join(f"drop tcp from @many sport {1000 + 3 * i} dport 22" for i in range(200))
    plan = _plan(f"set many {{ {inside} }}\n{rules}")
    calls = []
    real = lockout.evaluate
    monkeypatch.setattr(lockout, "evaluate", lambda *a, **k: calls.append(1) or real(*a, **k))
    found = judge_lockout(plan, M)
    flows = 6
    assert len(calls) <= flows * (1 + 6 * lockout.MAX_VARIANTS)
    assert any(f.stage == "xdp" and f.what.startswith("SSH") for f in found)

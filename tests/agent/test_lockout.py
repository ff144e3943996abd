"""The agent's side of the lockout guard: live lists in the hub's shape, looked up, never scanned."""
from __future__ import annotations

import ipaddress

import pytest

from agent.config import AgentConfig
from agent.entries import Entries
from agent.errors import PolicyRejected
from agent.lockout import check_plan
from rules_dsl import load

CONFIG = AgentConfig(hub_address="203.0.113.5", hub_port=443,
                     admin_prefixes=("198.51.100.0/24", "2001:db8:2::/48"))
PLAN = load('policy "p"\ndefault pass\nset bans { list "ban" }\ndrop from @bans\n', "p.bw").plan


class Counting(Entries):
    """Entries that count lookups and refuse to be iterated or scanned for prefixes."""
    lookups = 0

    def __contains__(self, entry):
        type(self).lookups += 1
        return super().__contains__(entry)

    def __iter__(self):
        raise AssertionError("iterated")

    def prefixes(self):
        raise AssertionError("scanned")


@pytest.mark.parametrize("entry, addr, held", [
    ("198.51.100.1/32", "198.51.100.1", True),      # the hub's host form
    ("198.51.100.1", "198.51.100.1", True),         # a bare host
    ("198.51.0.0/16", "198.51.100.1", True),
    ("0.0.0.0/0", "198.51.100.1", True),
    ("198.51.100.2/32", "198.51.100.1", False),
    ("2001:db8:2::1/128", "2001:db8:2::1", True),
    ("2001:db8::/32", "2001:db8:2::1", True),
    ("2001:db8:3::/48", "2001:db8:2::1", False),
])
def test_entries_answer_address_lookups_for_every_form_the_hub_sends(entry, addr, held):
    assert (ipaddress.ip_address(addr) in Entries([entry])) is held


def test_a_hub_plan_whose_list_holds_an_admin_host_is_refused_without_a_scan():
    many = Counting([f"10.{i >> 8 & 255}.{i & 255}.1/32" for i in range(5000)] + ["198.51.100.1/32"])
    Counting.lookups = 0
    with pytest.raises(PolicyRejected) as info:
        check_plan(PLAN, {"ban": many}, CONFIG)
    assert "SSH (port 22) from 198.51.100.0/24" in str(info.value)
    assert Counting.lookups < 400
    check_plan(PLAN, {"ban": Counting(["10.0.0.0/8"])}, CONFIG)

"""Shadowing at scale: the indexed cover test agrees with the old pairwise one, a policy
with a 5,000-address set checks in bounded work, and a budget ends what would not."""
from __future__ import annotations

import importlib
import ipaddress

from hypothesis import given, strategies as st

from rules_dsl.resolve import RAddrSet, RRule

from .helpers import HEADER, diags

chk = importlib.import_module("rules_dsl.check")   # the package exports a function `check`


def pairwise_set_covers(e, l) -> bool:
    """The checker's original cover test (every member of `l` inside one member of `e`,
    compared pairwise): the oracle for the indexed one."""
    if e is None:
        return True
    if l is None:
        return {str(x) for x in e.nets} >= {"0.0.0.0/0", "::/0"}
    if not set(l.lists) <= set(e.lists):
        return False
    return all(any(x.version == y.version and x.subnet_of(y) for y in e.nets) for x in l.nets)


def _net(version: int, addr: int, plen: int):
    bits = 32 if version == 4 else 128
    # Few distinct high bits so that nesting and equal prefixes are common.
    addr = (addr % 64) << (bits - 8)
    plen %= bits + 1
    return ipaddress.ip_network((addr, plen), strict=False)


nets = st.builds(_net, st.sampled_from([4, 6]), st.integers(0, 1 << 16),
                 st.integers(0, 10) | st.integers(0, 128))
sets = st.none() | st.builds(
    lambda ns, ls: RAddrSet("k", tuple(ns), tuple(ls)),
    st.lists(nets, max_size=8),
    st.lists(st.sampled_from(["a", "b"]), max_size=2, unique=True))



@given(sets, sets)
def test_indexed_cover_agrees_with_the_pairwise_oracle(e, l):
    assert chk.Covers()(RRule("drop", src=e), RRule("drop", src=l)) == \
        pairwise_set_covers(e, l)
    assert chk._set_covers(e, l) == pairwise_set_covers(e, l)


def _big_policy(n: int = 5000) -> str:
    addrs = ", ".join(str(ipaddress.ip_address(0x0A000000 + 2 * i)) for i in range(n))
    return (HEADER + f"set big {{ {addrs} }}\npass tcp from @big dport 1-1024\n"
            "drop tcp from @big dport 22\ndrop tcp from @big dport 80\ndrop tcp from @big dport 443\n")


def test_a_set_of_5000_non_adjacent_addresses_in_four_rules_checks_within_the_budget():
    found = diags(_big_policy())
    assert not [d for d in found if d.severity == "error"]
    assert sum("takes every packet it would" in d.message for d in found) == 3


def test_past_the_budget_the_check_ends_in_a_clear_error(monkeypatch):
    monkeypatch.setattr(chk, "MAX_SHADOW_WORK", 1000)
    errors = [d for d in diags(_big_policy(500)) if d.severity == "error"]
    assert errors and errors[0].message.startswith(chk.BUDGET_MESSAGE)

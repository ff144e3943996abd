"""A list's entries on the agent: what the hub packs is what the agent holds, persists
and looks addresses up in (the codec's own properties are in tests/rules_dsl)."""
from __future__ import annotations

import base64
import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.entries import Entries, from_wire, to_wire
from hub.services.lists import parse_network
from rules_dsl.errors import AddressError


@st.composite
def hub_inputs(draw) -> str:
    """A network as a user may send it to the hub."""
    addr = draw(st.ip_addresses())
    plen = draw(st.one_of(st.just(addr.max_prefixlen), st.integers(0, addr.max_prefixlen)))
    net = ipaddress.ip_network(f"{addr}/{plen}", strict=False)
    return draw(st.sampled_from([str(net), f"{net.network_address.exploded}/{plen}"]
                                + ([str(addr), addr.exploded] if plen == addr.max_prefixlen else [])))


@given(st.lists(hub_inputs(), max_size=30))
@settings(max_examples=60)
def test_what_the_hub_stores_and_sends_is_what_the_agent_holds(texts):
    stored = [parse_network(t) for t in texts]  # the hub's canonical rows
    wire = to_wire(Entries(stored))  # the hub packs them (hub.services.lists._b64)
    held = from_wire(wire)
    assert set(held) == set(stored) == set(Entries(texts))
    for text in texts:
        net = ipaddress.ip_network(text)
        assert text in held and net.network_address in held


def test_the_wire_form_is_checked():
    for bad in (7, None, "not base64!", base64.b64encode(b"BWA1").decode()):
        with pytest.raises(AddressError):
            from_wire(bad)
    assert len(from_wire(to_wire(Entries()))) == 0


def test_lookup_of_an_address_covers_hosts_and_prefixes_of_both_families():
    e = Entries(["192.0.2.1", "198.51.100.0/24", "2001:db8::/32", "203.0.113.7/32", "::1"])
    assert ipaddress.ip_address("198.51.100.77") in e and ipaddress.ip_address("2001:db8:1::5") in e
    assert ipaddress.ip_address("192.0.2.2") not in e and ipaddress.ip_address("2001:db9::") not in e
    assert sorted(e.prefixes()) == ["198.51.100.0/24", "2001:db8::/32"] and Entries().prefixes() == []

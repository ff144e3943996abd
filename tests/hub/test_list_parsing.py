"""List entry parsing at the hub: `rules_dsl.addresses` agrees with `ipaddress` on every
input (except the netmask spelling `10.0.0.0/255.0.0.0`, which lists refuse), and
stores single hosts bare."""
from __future__ import annotations

import ipaddress

from hypothesis import example, given
from hypothesis import strategies as st

from hub.services.lists import parse_network


def reference(text: str) -> str | None:
    _, _, length = text.strip().partition("/")
    if "." in length or ":" in length:
        return None  # netmask notation: not a list entry
    try:
        net = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError:
        return None
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


def ours(text: str) -> str | None:
    try:
        return parse_network(text)
    except ValueError:
        return None


octet = st.one_of(st.integers(0, 255).map(str), st.sampled_from(["01", "256", "", "-1", "0x1", "١"]))
dotted = st.lists(octet, min_size=3, max_size=5).map(".".join)
suffix = st.one_of(st.just(""), st.integers(-1, 40).map(lambda n: f"/{n}"),
                   st.sampled_from(["/", "/024", "/²", "/ 8", "/255.255.255.0", "/8 "]))


@given(dotted, suffix)
@example("1.2.3.4", "")
@example("1.2.3.4", "/32")
@example("10.0.0.0", "/8")
@example("10.0.0.1", "/8")
def test_ipv4_agrees_with_ipaddress(address, length):
    text = address + length
    assert ours(text) == reference(text)


@given(st.text(max_size=20))
def test_any_text_is_parsed_or_refused_like_ipaddress(text):
    assert ours(text) == reference(text)


@given(st.ip_addresses(v=6), st.integers(0, 128))
def test_ipv6_agrees_with_ipaddress(address, length):
    net = ipaddress.ip_network(f"{address}/{length}", strict=False)
    for text in (f"{net.network_address}/{length}", f"{net.network_address.exploded}/{length}"):
        assert ours(text) == reference(text)


def test_hosts_are_stored_bare_and_mistakes_are_explained():
    assert parse_network("192.0.2.1/32") == parse_network(" 192.0.2.1 ") == "192.0.2.1"
    assert parse_network("2001:0db8:0:0:0:0:0:1/128") == "2001:db8::1"
    assert parse_network("2001:db8::/32") == "2001:db8::/32"
    try:
        parse_network("10.0.0.1/8")
    except ValueError as exc:
        assert "did you mean 10.0.0.0/8" in str(exc)
    else:
        raise AssertionError("host bits accepted")

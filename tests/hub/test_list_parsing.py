"""List entry parsing: the IPv4 fast path agrees with `ipaddress` on every input."""
from __future__ import annotations

import ipaddress

from hypothesis import example, given
from hypothesis import strategies as st

from hub.services.lists import parse_network


def reference(text: str) -> str | None:
    try:
        return str(ipaddress.ip_network(text.strip(), strict=True))
    except ValueError:
        return None


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
@example("10.0.0.0", "/8")
@example("10.0.0.1", "/8")
def test_ipv4_fast_path_agrees_with_ipaddress(address, length):
    text = address + length
    assert ours(text) == reference(text)


@given(st.text(max_size=20))
def test_any_text_is_parsed_or_refused_like_ipaddress(text):
    assert ours(text) == reference(text)

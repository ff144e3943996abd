"""The one address codec: every form the hub accepts or emits means the same on both
sides, text → binary → text is the identity on canonical forms, and membership in the
packed form is what `ipaddress` says."""
from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules_dsl import addresses
from rules_dsl.addresses import Packed
from rules_dsl.errors import AddressError


@st.composite
def networks(draw) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    addr = draw(st.ip_addresses())
    plen = draw(st.one_of(st.just(addr.max_prefixlen), st.integers(0, addr.max_prefixlen)))
    return ipaddress.ip_network(f"{addr}/{plen}", strict=False)


def spellings(net) -> list[str]:
    """Every way a user or an older hub writes this network."""
    host = net.prefixlen == net.max_prefixlen
    out = [str(net), f"{net.network_address.exploded}/{net.prefixlen}", f" {net} "]
    if host:
        out += [str(net.network_address), net.network_address.exploded]
    return out


def canonical_of(net) -> str:
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


@given(networks())
def test_every_spelling_has_the_one_canonical_form_and_value(net):
    for text in spellings(net):
        assert addresses.canonical(text) == canonical_of(net)
        _, packed, plen = addresses.parse(text)
        assert (packed, plen) == (net.network_address.packed, net.prefixlen)


@given(st.lists(networks(), max_size=40))
@settings(max_examples=60)
def test_text_to_binary_to_text_round_trips(nets):
    texts = [t for n in nets for t in spellings(n)]
    packed = Packed(texts)
    back = Packed.from_bytes(packed.to_bytes())
    assert back == packed and hash(back) == hash(packed)
    assert set(back) == {canonical_of(n) for n in nets} and len(back) == len(set(nets))
    assert Packed(list(back)) == packed  # canonical texts parse to the same value


@given(st.lists(networks(), max_size=30), st.lists(st.ip_addresses(), max_size=20))
@settings(max_examples=60)
def test_an_address_is_in_the_list_when_an_entry_covers_it(nets, probes):
    packed = Packed([str(n) for n in nets])
    for addr in probes + [n.network_address for n in nets]:
        assert (addr in packed) == any(addr in n for n in nets)
    for n in nets:
        assert str(n) in packed and canonical_of(n) in packed


@given(st.frozensets(networks(), max_size=25), st.frozensets(networks(), max_size=25),
       st.frozensets(networks(), max_size=25), st.booleans())
@settings(max_examples=60)
def test_a_delta_is_set_arithmetic_spliced_or_rebuilt(base, added, removed, rebuild):
    expected = Packed([str(n) for n in (base - (removed - added)) | added])  # removed first, then added
    limit = addresses.SMALL_EDIT
    addresses.SMALL_EDIT = -1 if rebuild else limit
    try:
        got = Packed([str(n) for n in base]).changed(Packed([str(n) for n in added]),
                                                     Packed([str(n) for n in removed]))
    finally:
        addresses.SMALL_EDIT = limit
    assert got == expected


@given(st.lists(st.lists(networks(), max_size=10), max_size=4))
@settings(max_examples=60)
def test_a_union_holds_every_entry_of_its_parts(parts):
    packs = [Packed([str(n) for n in part]) for part in parts] or [Packed()]
    assert packs[0].union(*packs[1:]) == Packed([str(n) for part in parts for n in part])


def test_a_one_entry_delta_on_a_million_hosts_is_spliced():
    hosts = [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(1_000_000)]
    big = Packed(hosts)
    after = big.changed(Packed(["192.0.2.1", "10.0.0.5"]), Packed(["10.0.0.7/32", "203.0.113.1"]))
    assert len(after) == len(big) and "192.0.2.1" in after and "10.0.0.7" not in after
    assert ipaddress.ip_address("10.15.66.63") in after and ipaddress.ip_address("10.16.0.0") not in after
    assert after.table("v4_hosts")[-4:] == bytes([192, 0, 2, 1])  # still sorted: the keys as stored
    assert after.changed(Packed(), Packed()) is after


@pytest.mark.parametrize("text, reason", [
    ("10.0.0.1/8", "did you mean 10.0.0.0/8"), ("010.0.0.1", "not an IPv4/IPv6"),
    ("1.2.3.4/33", "over 32"), ("::1/129", "over 128"), ("1.2.3.4/", "bad prefix length"),
    ("1.2.3.4/08 8", "bad prefix length"), ("fe80::1%eth0", "not an IPv4/IPv6"), ("", "not an"),
    ("10.0.0.0/255.0.0.0", "bad prefix length"), ("1" * 5000, "not an"),
])
def test_bad_entries_are_refused_with_a_reason(text, reason):
    with pytest.raises(AddressError, match=reason):
        addresses.canonical(text)
    with pytest.raises(ValueError, match=reason):
        Packed(["192.0.2.1", text] if text else ["192.0.2.1", " x"])


@pytest.mark.parametrize("data", [b"", b"BWA1", b"XXXX" + bytes(16),
                                  Packed(["10.0.0.0/8"]).to_bytes()[:-1],
                                  Packed(["10.0.0.0/8"]).to_bytes() + b"\0",
                                  Packed(["10.0.0.0/8"]).to_bytes()[:-1] + bytes([33])])
def test_bytes_that_are_not_the_binary_form_are_refused(data):
    with pytest.raises(AddressError):
        Packed.from_bytes(data)


def test_the_binary_form_is_the_documented_layout():
    data = Packed(["192.0.2.1", "10.0.0.0/8", "::1", "2001:db8::/32"]).to_bytes()
    assert data[:4] == b"BWA1" and data[4:20] == (1).to_bytes(4, "little") * 4
    assert data[20:24] == bytes([192, 0, 2, 1]) and data[24:29] == bytes([10, 0, 0, 0, 8])
    assert data[29:45] == bytes(15) + b"\x01" and data[45:62] == bytes.fromhex("20010db8") + bytes(12) + b"\x20"


@pytest.mark.parametrize("text", ["QUJD\n", " QUJD", "QU=JD", "QUJ", "Q!JD", "QUJDRA===", "QUJDé", "\0"])
def test_the_wire_form_takes_strict_base64_only(text):
    """from_wire decodes in one C pass (binascii's strict mode), refusing what validate=True
    refused: characters outside the alphabet, misplaced or missing padding."""
    with pytest.raises(AddressError, match="not valid base64"):
        addresses.from_wire(text)
    wire = addresses.to_wire(Packed(["192.0.2.1", "2001:db8::/32"]))
    assert addresses.from_wire(wire) == Packed(["192.0.2.1", "2001:db8::/32"])

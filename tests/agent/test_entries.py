"""Packed list entries: a small delta edited in the packed form gives exactly what the
set arithmetic gives, and membership agrees with the set."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agent import entries as entries_module
from agent.entries import Entries

ENTRY = st.text(alphabet="0123456789abcdef.:/", min_size=1, max_size=6)
SETS = st.frozensets(ENTRY, max_size=30)


@given(SETS, SETS, SETS)
def test_small_delta_in_packed_form_is_set_arithmetic(base, added, removed):
    before = Entries(base)
    after = before.changed(added, removed)
    assert after == Entries((base - (removed - added)) | added)  # removed first, then added
    assert len(after) == len(after.set())
    assert all(e in before for e in base) and not any(e in before for e in added - base)
    assert set(before.present(added | removed)) == (added | removed) & base


@given(SETS, SETS, SETS)
def test_large_delta_takes_the_set_path_with_the_same_result(base, added, removed):
    small = Entries(base).changed(added, removed)
    limit, entries_module.SMALL_DELTA = entries_module.SMALL_DELTA, 0
    try:
        assert Entries(base).changed(added, removed) == small
        assert set(Entries(base).present(added | removed)) == (added | removed) & base
    finally:
        entries_module.SMALL_DELTA = limit


def test_a_one_entry_delta_on_a_big_list_stays_packed():
    base = Entries(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(100_000))
    after = base.changed(["192.0.2.1", " 10.0.0.5 "], ["10.0.0.7", "203.0.113.1"])
    assert len(after) == len(base) and "192.0.2.1" in after and "10.0.0.7" not in after
    assert after.changed([], []) is after and Entries().changed(["a"], []) == {"a"}


def test_prefixes_are_found_in_the_packed_form():
    e = Entries(["192.0.2.1", "198.51.100.0/24", "2001:db8::/32", "203.0.113.7"])
    assert sorted(e.prefixes()) == ["198.51.100.0/24", "2001:db8::/32"] and Entries().prefixes() == []

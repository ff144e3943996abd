"""The exact-host tables (bpf/host_table.py): sizing, a million hosts loaded from the
packed form still judged right at every edge, deltas over the table, and outer slots
written only when their map changes."""
from __future__ import annotations

import ipaddress
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpf import guard_tables as gt
from bpf import host_table
from bpf.errors import NoSpace
from bpf.guard_plan import spec_from_plan
from bpf.object import XdpAction
from rules_dsl import compile, parse
from rules_dsl.addresses import Packed
from tests.guard.test_table import tcp

pytestmark = pytest.mark.kernel

PLAN = compile(parse('policy "hosts"\ndefault pass\nset deny { list "deny" }\ndrop from @deny\n'))
BASE = 0x0A000000  # 10.0.0.0


def v4(n: int) -> str:
    return str(ipaddress.IPv4Address(n))


def verdict(guard, src: str) -> int:
    return guard.program.test_run(tcp(src, 80)).retval


@pytest.mark.parametrize("count, family, pages", [
    (0, "v4", 1), (1, "v4", 1), (256, "v4", 1), (257, "v4", 2), (1_000_000, "v4", 4096),
    (0, "v6", 1), (64, "v6", 1), (65, "v6", 2), (100_000, "v6", 2048),
])
def test_a_table_is_sized_to_its_hosts_with_half_its_slots_free(count, family, pages):
    assert host_table.pages_for(count, family) == pages
    assert pages * host_table.SLOTS[family] >= count * host_table.LOAD


def test_a_million_packed_hosts_load_and_match_at_every_edge(guard):
    count = 1_000_000
    hosts = Packed([v4(BASE + i) for i in range(count)] + ["2001:db8::", "2001:db8::ffff"])
    guard.apply(spec_from_plan(PLAN, {"deny": Packed.from_bytes(hosts.to_bytes())}))
    table = guard._inner[guard.generation]["v4_table"]
    assert table.max_entries == 1 + host_table.pages_for(count, "v4")  # sized to the list
    inside = [BASE, BASE + 1, BASE + 255, BASE + 256, BASE + count - 1] + \
        random.Random(11).sample(range(BASE, BASE + count), 200)
    outside = [BASE - 1, BASE + count, BASE + count + 1, 0, 0xFFFFFFFF, 0xC0000201]
    assert {verdict(guard, v4(a)) for a in inside} == {XdpAction.DROP}
    assert {verdict(guard, v4(a)) for a in outside} == {XdpAction.PASS}
    assert verdict(guard, "2001:db8::") == verdict(guard, "2001:db8::ffff") == XdpAction.DROP
    assert verdict(guard, "2001:db8::1") == verdict(guard, "2001:db8::1:0") == XdpAction.PASS
    for a in inside[:20]:  # the loader's reading of the kernel table agrees
        assert host_table.find(table, "v4", ipaddress.IPv4Address(a).packed) == 1 << 0
    assert host_table.find(table, "v4", ipaddress.IPv4Address(BASE + count).packed) == 0


def test_a_table_whose_probes_run_long_is_rebuilt_wider(guard, monkeypatch):
    monkeypatch.setattr(host_table, "pages_for", lambda count, family: 1)  # 512 slots for 1,500 hosts
    hosts = [v4(BASE + 7 * i) for i in range(1500)]
    guard.apply(spec_from_plan(PLAN, {"deny": hosts}))
    table = guard._inner[guard.generation]["v4_table"]
    assert table.max_entries - 1 >= 4
    assert {verdict(guard, h) for h in hosts[::37]} == {XdpAction.DROP}
    assert verdict(guard, v4(BASE + 1)) == XdpAction.PASS


def test_hosts_that_will_not_spread_are_refused_not_grown_without_end(guard, monkeypatch):
    monkeypatch.setattr(host_table, "pages_for", lambda count, family: 1)
    monkeypatch.setattr(host_table, "GROWTH_MAX", 1)
    with pytest.raises(gt.GuardSpecError, match="do not spread over a table of 1 pages"):
        host_table.build("v4", [(1, Packed([v4(BASE + i) for i in range(3000)]).table("v4_hosts"))])


def test_each_table_hashes_with_its_own_random_seed():
    """So no list can be chosen to pile its hosts into one page (the table would double
    until it failed): the same hosts land in two tables with different seeds."""
    keys = Packed([v4(BASE + i) for i in range(100)]).table("v4_hosts")
    seeds = set()
    for _ in range(2):
        with host_table.build("v4", [(1, keys)]) as table:
            seeds.add(host_table.GuardTableHead.from_buffer_copy(table.get((0).to_bytes(4, "little"))).seed)
            assert host_table.find(table, "v4", keys[:4]) == 1
    assert len(seeds) == 2


def test_more_set_combinations_than_a_table_holds_are_refused_and_nothing_changes(guard):
    guard.apply(spec_from_plan(PLAN, {"deny": ["10.9.9.9"]}))
    # host h belongs to set s when bit s of h is set: 511 distinct combinations of 9 sets
    sets = {s: gt.AddressSet(v4_hosts=frozenset(h for h in range(1, 512) if h >> s & 1)) for s in range(9)}
    generation = guard.generation
    with pytest.raises(gt.GuardSpecError, match="511 distinct combinations of sets"):
        guard.apply(gt.GuardSpec(rules=(gt.Rule(gt.DROP, src=0),), sets=sets))
    assert guard.generation == generation
    assert verdict(guard, "10.9.9.9") == XdpAction.DROP


def test_deltas_over_a_table_add_remove_and_never_leak_into_a_later_build(guard):
    listed = [v4(BASE + i) for i in range(5000)]
    guard.apply(spec_from_plan(PLAN, {"deny": listed}))
    assert guard.update_set(0, removed=[listed[10]], added=["192.0.2.77"]) == 2
    assert verdict(guard, listed[10]) == XdpAction.PASS  # in the table, removed by its delta
    assert verdict(guard, "192.0.2.77") == XdpAction.DROP  # not in the table, added
    assert verdict(guard, listed[11]) == XdpAction.DROP
    guard.update_set(0, added=[listed[10]])
    assert verdict(guard, listed[10]) == XdpAction.DROP
    # a new list without the delta's host: neither generation may still carry the delta
    other = {"deny": listed[:100]}
    guard.apply(spec_from_plan(PLAN, other))
    assert verdict(guard, "192.0.2.77") == XdpAction.PASS
    guard.apply(spec_from_plan(PLAN, other))  # the generation that held the delta, rebuilt
    assert verdict(guard, "192.0.2.77") == XdpAction.PASS
    assert verdict(guard, listed[5]) == XdpAction.DROP and verdict(guard, listed[500]) == XdpAction.PASS


def test_a_kept_table_comes_back_without_the_deltas_it_saw(guard):
    listed = {"deny": [v4(BASE + i) for i in range(5000)]}
    guard.apply(spec_from_plan(PLAN, listed))
    guard.apply(spec_from_plan(PLAN, listed))
    guard.update_set(0, removed=[listed["deny"][10]])  # its filter bit stays set in the kept table
    assert verdict(guard, listed["deny"][10]) == XdpAction.PASS
    guard.apply(spec_from_plan(PLAN, listed))
    assert verdict(guard, listed["deny"][10]) == XdpAction.DROP
    guard.apply(spec_from_plan(PLAN, listed))  # the generation that saw the delta, table kept
    assert verdict(guard, listed["deny"][10]) == XdpAction.DROP


def test_shared_sets_carry_the_live_deltas_into_the_new_generation(guard):
    guard.apply(spec_from_plan(PLAN, {"deny": ["10.1.1.1"]}), content_id="rev1")
    guard.update_set(0, added=["10.1.1.2"])
    guard.apply(spec_from_plan(PLAN, {"deny": ["10.1.1.1", "10.1.1.2"]}), content_id="rev2")
    guard.apply(spec_from_plan(PLAN, {"deny": ["10.1.1.1", "10.1.1.2"]}), content_id="rev2")  # shared
    assert verdict(guard, "10.1.1.2") == XdpAction.DROP
    guard.update_set(0, added=["10.1.1.3"])
    guard.apply(spec_from_plan(PLAN, {"deny": ["10.1.1.1", "10.1.1.2"]}), content_id="rev2")
    assert verdict(guard, "10.1.1.3") == XdpAction.PASS  # rev2 never held it: the ids differ now


def test_a_full_delta_hash_says_no_space(guard, monkeypatch):
    monkeypatch.setattr(host_table, "DELTA_CAPACITY", 4)
    from bpf.guard import Guard

    with Guard() as g:
        g.apply(spec_from_plan(PLAN, {"deny": ["10.0.0.1"]}))
        g.update_set(0, added=[f"10.2.0.{i}" for i in range(4)])
        with pytest.raises(NoSpace, match="re-apply the spec"):
            g.update_set(0, added=["10.2.0.9"])


def outer_ids(guard, gen: int) -> dict[str, int]:
    """The ids of the maps a generation's outer slots hold."""
    return {role: outer[gen] for role, outer in guard.outer.items()}


def test_maps_whose_contents_do_not_change_are_kept(guard):
    lists = {"deny": [v4(BASE + i) for i in range(1000)] + ["203.0.113.0/24"]}
    guard.apply(spec_from_plan(PLAN, lists))
    guard.apply(spec_from_plan(PLAN, lists))
    idle = 1 - guard.generation
    before = outer_ids(guard, idle)
    guard.apply(spec_from_plan(PLAN, lists))  # the same contents into that generation
    assert guard.generation == idle and outer_ids(guard, idle) == before
    idle = 1 - guard.generation
    before = outer_ids(guard, idle)
    guard.apply(spec_from_plan(PLAN, {"deny": lists["deny"][:-1] + ["203.0.112.0/24"]}))
    after = outer_ids(guard, idle)
    assert {role for role in before if after[role] != before[role]} == {"v4_nets"}  # hosts kept
    assert verdict(guard, "203.0.112.1") == XdpAction.DROP and verdict(guard, "203.0.113.1") == XdpAction.PASS


def test_a_trie_edited_by_a_delta_is_not_reused_for_its_old_contents(guard):
    lists = {"deny": ["198.51.100.0/24"]}
    guard.apply(spec_from_plan(PLAN, lists))
    guard.apply(spec_from_plan(PLAN, lists))
    guard.update_set(0, added=["100.64.0.0/10"])  # edits the live trie in place
    assert verdict(guard, "100.64.1.1") == XdpAction.DROP
    guard.apply(spec_from_plan(PLAN, lists))
    guard.apply(spec_from_plan(PLAN, lists))  # back to the generation whose trie was edited
    assert verdict(guard, "100.64.1.1") == XdpAction.PASS
    assert verdict(guard, "198.51.100.1") == XdpAction.DROP


POOL = [f"10.3.0.{i}" for i in range(12)] + [f"2001:db8:3::{i:x}" for i in range(12)]
TWO = compile(parse('policy "two"\ndefault pass\nset a { list "a" }\nset b { list "b" }\n'
                    'drop from @a\ndrop tcp from @b dport 80\n'))


@settings(max_examples=60, deadline=None)
@given(a=st.sets(st.sampled_from(POOL)), b=st.sets(st.sampled_from(POOL)),
       changes=st.lists(st.tuples(st.sampled_from("ab"), st.booleans(), st.sampled_from(POOL)), max_size=12))
def test_any_tables_and_deltas_judge_membership_like_the_sets_they_hold(guard, a, b, changes):
    """Two lists sharing hosts (several masks in one table), then one-entry changes: every
    pooled address is dropped exactly when a model of the two sets says so."""
    guard.apply(spec_from_plan(TWO, {"a": sorted(a), "b": sorted(b)}))
    model = {"a": set(a), "b": set(b)}
    for name, adding, host in changes:
        guard.update_set(0 if name == "a" else 1, **{"added" if adding else "removed": [host]})
        (model[name].add if adding else model[name].discard)(host)
    for host in POOL:
        want = XdpAction.DROP if host in model["a"] | model["b"] else XdpAction.PASS
        assert verdict(guard, host) == want, host

"""The heart of the guard: on every packet it agrees with the reference evaluator.

Generated Plans and frames (valid, tagged, truncated, corrupted, not IP) run through the
loaded XDP program (BPF_PROG_TEST_RUN) and through rules_dsl.evaluate; verdict and
deciding rule (read from the per-rule counters) must be equal. Rate limits run on the
guard's test clock, so burst boundaries compare exactly.
"""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.guard.harness import compare
from tests.guard.strategies import frames, limited_plans, list_contents, plans, valid_frames

pytestmark = pytest.mark.kernel


@settings(max_examples=150)
@given(plan=plans(), lists=list_contents, batch=st.lists(frames(), min_size=1, max_size=20))
def test_guard_agrees_with_the_reference_evaluator(guard, plan, lists, batch):
    compare(guard, plan, [(frame, 0) for frame in batch], lists)


@settings(max_examples=60)
@given(plan=plans(max_rules=4), some=st.lists(frames(), min_size=1, max_size=3),
       gaps=st.lists(st.sampled_from([0, 1, 999_999, 1_000_000, 10**8, 2 * 10**9]), min_size=2, max_size=25))
def test_rate_limits_agree_across_burst_boundaries(guard, plan, some, gaps):
    """A few packets in turn, again and again, at times chosen around refill boundaries:
    with stacked limits, per-key and global buckets drain at different paces."""
    times, now = [], 0
    for gap in gaps:
        now += gap
        times.append(now)
    compare(guard, plan, [(some[i % len(some)], t) for i, t in enumerate(times)], {})


@settings(max_examples=100)
@given(plan=limited_plans(), some=st.lists(valid_frames(), min_size=2, max_size=4),
       gaps=st.lists(st.sampled_from([0] * 3 + [10**8] * 3 + [1, 499_999_999, 500_000_000, 10**9]),
                     min_size=4, max_size=40))
def test_stacked_limits_agree(guard, plan, some, gaps):
    """Packets that meet rules of 2..4 stacked limits (packets or bytes, per source,
    destination or global, with blocks), in turn, around refill boundaries. Half the
    stacks put per-key limits before global ones, where charging a refused packet to the
    later limits (what the guard must not do) shows after a refill."""
    times, now = [], 0
    for gap in gaps:
        now += gap
        times.append(now)
    compare(guard, plan, [(some[i % len(some)], t) for i, t in enumerate(times)], {})

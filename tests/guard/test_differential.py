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
from tests.guard.strategies import frames, list_contents, plans

pytestmark = pytest.mark.kernel


@settings(max_examples=150)
@given(plan=plans(), lists=list_contents, batch=st.lists(frames(), min_size=1, max_size=20))
def test_guard_agrees_with_the_reference_evaluator(guard, plan, lists, batch):
    compare(guard, plan, [(frame, 0) for frame in batch], lists)


@settings(max_examples=60)
@given(plan=plans(max_rules=4), frame=frames(),
       gaps=st.lists(st.sampled_from([0, 1, 999_999, 1_000_000, 10**8, 2 * 10**9]), min_size=2, max_size=25))
def test_rate_limits_agree_across_burst_boundaries(guard, plan, frame, gaps):
    """The same packet again and again, at times chosen around refill boundaries."""
    times, now = [], 0
    for gap in gaps:
        now += gap
        times.append(now)
    compare(guard, plan, [(frame, t) for t in times], {})

"""The rollout state machine alone (`hub.rollout`): the tables, and runs of it."""
from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub import rollout
from hub.errors import IllegalTransition
from hub.rollout import Event, State, TargetEvent, TargetStatus


def test_the_table_holds_exactly_the_documented_steps():
    assert rollout.TRANSITIONS == {
        (State.CANARY, Event.CANARIES_APPLIED): State.RELEASED,
        (State.CANARY, Event.CANARY_FAILED): State.FAILED,
        (State.RELEASED, Event.ALL_APPLIED): State.COMPLETE,
    }
    assert rollout.FINAL == {State.COMPLETE, State.FAILED}


@pytest.mark.parametrize("state,event", list(itertools.product(State, Event)))
def test_every_step_outside_the_table_is_illegal(state, event):
    if (state, event) in rollout.TRANSITIONS:
        assert rollout.step(state.value, event) is rollout.TRANSITIONS[(state, event)]
    else:
        with pytest.raises(IllegalTransition, match=state.value):
            rollout.step(state.value, event)


@pytest.mark.parametrize("status,event", list(itertools.product(TargetStatus, TargetEvent)))
def test_every_target_step_outside_its_table_is_illegal(status, event):
    if (status, event) in rollout.TARGET_TRANSITIONS:
        assert rollout.target_step(status.value, event) is rollout.TARGET_TRANSITIONS[(status, event)]
    else:
        with pytest.raises(IllegalTransition):
            rollout.target_step(status.value, event)


def test_an_unknown_state_from_the_database_is_illegal_not_a_crash():
    with pytest.raises(IllegalTransition):
        rollout.step("x" * 10_000, Event.ALL_APPLIED)
    with pytest.raises(IllegalTransition):
        rollout.target_step("", TargetEvent.APPLIED)


def test_a_step_taken_twice_is_illegal():
    """Two reports racing without the row lock would ask for this: it must not pass."""
    released = rollout.step("canary", Event.CANARIES_APPLIED)
    with pytest.raises(IllegalTransition):
        rollout.step(released, Event.CANARIES_APPLIED)


def test_reports_map_to_target_events():
    assert rollout.report_event("d", "d", None, True) is TargetEvent.APPLIED
    assert rollout.report_event("d", "d", None, False) is TargetEvent.FAILED  # applied but unhealthy
    assert rollout.report_event("d", "old", "d", False) is TargetEvent.FAILED
    assert rollout.report_event("d", "old", None, True) is None  # not there yet
    assert rollout.report_event("d", None, "other", False) is None


def test_initial_states():
    assert rollout.initial(True) is State.CANARY and rollout.initial(False) is State.RELEASED
    assert rollout.initial_target(canary=True, has_canaries=True) is TargetStatus.RELEASED
    assert rollout.initial_target(canary=False, has_canaries=True) is TargetStatus.PENDING
    assert rollout.initial_target(canary=False, has_canaries=False) is TargetStatus.RELEASED


def _run(canary_flags: list[bool], reports: list[tuple[int, bool]]):
    """A deployment driven by reports (target index, healthy), as the service drives it."""
    has_canaries = any(canary_flags) and not all(canary_flags)
    canary = [c and has_canaries for c in canary_flags]
    state = rollout.initial(has_canaries)
    status = [rollout.initial_target(canary=c, has_canaries=has_canaries) for c in canary]
    trail = [state]
    for i, healthy in reports:
        i %= len(status)
        if status[i] != TargetStatus.RELEASED:
            continue  # the service ignores reports of targets not released
        status[i] = rollout.target_step(status[i], TargetEvent.APPLIED if healthy else TargetEvent.FAILED)
        while (event := rollout.next_event(state, (s for s, c in zip(status, canary) if c), status)) is not None:
            state = rollout.step(state, event)
            trail.append(state)
            if event is Event.CANARY_FAILED:
                status = [rollout.target_step(s, TargetEvent.ROLL_BACK)
                          if c and s != TargetStatus.FAILED else s for s, c in zip(status, canary)]
            elif event is Event.CANARIES_APPLIED:
                status = [rollout.target_step(s, TargetEvent.RELEASE) if s == TargetStatus.PENDING else s
                          for s in status]
    return trail, status, canary


@given(st.lists(st.booleans(), min_size=1, max_size=6),
       st.lists(st.tuples(st.integers(0, 5), st.booleans()), max_size=30))
def test_runs_only_ever_follow_the_table(canary_flags, reports):
    trail, status, canary = _run(canary_flags, reports)
    assert len(set(trail)) == len(trail)  # no state entered twice: each transition happens once
    if trail[-1] is State.COMPLETE:
        assert all(s == TargetStatus.APPLIED for s in status)
    if trail[-1] is State.FAILED:
        assert any(s == TargetStatus.FAILED for s, c in zip(status, canary) if c)
        assert TargetStatus.APPLIED not in [s for s, c in zip(status, canary) if c]  # rolled back
        assert all(s == TargetStatus.PENDING for s, c in zip(status, canary) if not c)
    if State.RELEASED in trail and State.CANARY in trail:
        assert State.FAILED not in trail

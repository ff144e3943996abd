"""The rollout state machine of a deployment and of each of its targets. Pure: no I/O.

Invariants:
- A deployment starts in CANARY (it has canaries) or RELEASED (it has none), and moves
  only along `TRANSITIONS`: CANARY → RELEASED (every canary applied) → COMPLETE (every
  target applied); CANARY → FAILED (a canary failed). COMPLETE and FAILED are final.
- A target moves only along `TARGET_TRANSITIONS`: PENDING → RELEASED → APPLIED | FAILED;
  RELEASED or APPLIED → ROLLED_BACK when a failed canary stops the rollout.
- Anything else raises IllegalTransition: a transition the code asks for twice (two
  reports racing) is a bug the database lock must make impossible, not a no-op.
- `next_event` reads only target statuses, so each step is decided from what the
  database holds under the deployment's row lock (`hub.services.deployments`).
"""
from __future__ import annotations

import enum
from collections.abc import Iterable

from hub.errors import IllegalTransition


class State(enum.StrEnum):
    CANARY = "canary"
    RELEASED = "released"
    COMPLETE = "complete"
    FAILED = "failed"


class Event(enum.StrEnum):
    CANARIES_APPLIED = "canaries_applied"
    CANARY_FAILED = "canary_failed"
    ALL_APPLIED = "all_applied"


class TargetStatus(enum.StrEnum):
    PENDING = "pending"
    RELEASED = "released"
    APPLIED = "applied"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"


class TargetEvent(enum.StrEnum):
    RELEASE = "release"
    APPLIED = "applied"
    FAILED = "failed"
    ROLL_BACK = "roll_back"


TRANSITIONS: dict[tuple[State, Event], State] = {
    (State.CANARY, Event.CANARIES_APPLIED): State.RELEASED,
    (State.CANARY, Event.CANARY_FAILED): State.FAILED,
    (State.RELEASED, Event.ALL_APPLIED): State.COMPLETE,
}

TARGET_TRANSITIONS: dict[tuple[TargetStatus, TargetEvent], TargetStatus] = {
    (TargetStatus.PENDING, TargetEvent.RELEASE): TargetStatus.RELEASED,
    (TargetStatus.RELEASED, TargetEvent.APPLIED): TargetStatus.APPLIED,
    (TargetStatus.RELEASED, TargetEvent.FAILED): TargetStatus.FAILED,
    (TargetStatus.RELEASED, TargetEvent.ROLL_BACK): TargetStatus.ROLLED_BACK,
    (TargetStatus.APPLIED, TargetEvent.ROLL_BACK): TargetStatus.ROLLED_BACK,
}

FINAL = frozenset(State) - {s for s, _ in TRANSITIONS}


def initial(has_canaries: bool) -> State:
    return State.CANARY if has_canaries else State.RELEASED


def initial_target(*, canary: bool, has_canaries: bool) -> TargetStatus:
    """Canaries (or, with none, every target) are released at once; the rest wait."""
    return TargetStatus.RELEASED if canary or not has_canaries else TargetStatus.PENDING


def step(state: str, event: Event) -> State:
    """The state after `event`. Raises IllegalTransition when the table has no such step."""
    try:
        return TRANSITIONS[(State(state), event)]
    except (KeyError, ValueError):
        raise IllegalTransition(f"a deployment in state {state!r} cannot take {event.value!r}") from None


def target_step(status: str, event: TargetEvent) -> TargetStatus:
    try:
        return TARGET_TRANSITIONS[(TargetStatus(status), event)]
    except (KeyError, ValueError):
        raise IllegalTransition(f"a target in status {status!r} cannot take {event.value!r}") from None


def next_event(state: str, canaries: Iterable[str], targets: Iterable[str]) -> Event | None:
    """What the targets' statuses call for now, if anything (`canaries` ⊆ `targets`)."""
    canaries, targets = list(canaries), list(targets)
    if state == State.CANARY:
        if any(s == TargetStatus.FAILED for s in canaries):
            return Event.CANARY_FAILED
        if all(s == TargetStatus.APPLIED for s in canaries):
            return Event.CANARIES_APPLIED
    elif state == State.RELEASED and all(s == TargetStatus.APPLIED for s in targets):
        return Event.ALL_APPLIED
    return None


def report_event(digest: str, applied_digest: str | None, failed_digest: str | None,
                 healthy: bool) -> TargetEvent | None:
    """What an agent's status report means for its released target of the deployment
    with `digest`: applied (and healthy), failed, or nothing yet."""
    if applied_digest == digest and healthy:
        return TargetEvent.APPLIED
    if failed_digest == digest or applied_digest == digest:
        return TargetEvent.FAILED
    return None

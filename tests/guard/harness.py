"""Run packets through the loaded guard and through the reference evaluator, side by side."""
from __future__ import annotations

from dataclasses import dataclass

from bpf import guard_tables as gt
from bpf.guard import Guard
from bpf.guard_plan import spec_from_plan
from bpf.object import XdpAction
from bpf.vectors import CLOCK_START_NS
from rules_dsl.evaluate import State, evaluate
from rules_dsl.packet import parse_frame
from rules_dsl.plan import Plan


@dataclass(frozen=True)
class Outcome:
    verdict: str  # pass | drop
    rule: int | str | None  # rule index, "default", "malformed", or None (not counted)


def kernel_outcome(guard: Guard, frame: bytes, before: dict) -> tuple[Outcome, dict]:
    """Run one frame; the deciding slot is the counter that moved."""
    ret = guard.program.test_run(frame).retval
    after = guard.counters()
    moved = [slot for slot, c in after.items()
             if c.packets != (before[slot].packets if slot in before else 0)]
    assert len(moved) <= 1, moved
    slot = moved[0] if moved else None
    rule = {gt.RULE_DEFAULT: "default", gt.RULE_MALFORMED: "malformed"}.get(slot, slot)
    verdict = {XdpAction.PASS: "pass", XdpAction.DROP: "drop"}[ret]
    return Outcome(verdict, rule), after


def reference_outcome(plan: Plan, frame: bytes, state: State, now_ns: int, lists) -> tuple[Outcome, State]:
    packet = parse_frame(frame)
    decision, state = evaluate(plan, packet, state, now_ns, lists=lists)
    if decision.reason == "non-ip":
        rule = None
    elif decision.reason == "malformed":
        rule = "malformed"
    elif decision.rule is None:
        rule = "default"
    else:
        rule = decision.rule
    return Outcome(decision.verdict, rule), state


def compare(guard: Guard, plan: Plan, frames_at: list[tuple[bytes, int]], lists=None) -> None:
    """Apply plan, then each (frame, time) through both sides: outcomes must be equal."""
    guard.apply(spec_from_plan(plan, lists))
    state = State()
    counters = guard.counters()
    for i, (frame, offset_ns) in enumerate(frames_at):
        now = CLOCK_START_NS + offset_ns
        guard.set_clock(now)
        expected, state = reference_outcome(plan, frame, state, now, lists)
        got, counters = kernel_outcome(guard, frame, counters)
        assert got == expected, (
            f"packet {i} at +{offset_ns} ns: kernel {got}, reference {expected}\n"
            f"frame {frame.hex()}\nparsed {parse_frame(frame)}")

"""A policy's expect lines through the loaded guard with BPF_PROG_TEST_RUN.

The same semantics as `rules_dsl.expects`: lines in order on one rate-limit state, the
clock from 0 moved by `at`, `x N` copies each judged; in monitor mode the verdict is
what enforce mode would do (the drop counters move). Used by the template publication
pipeline (`rules_dsl.publish`) and the guard's own tests.
"""
from __future__ import annotations

import threading

from bpf.guard import Guard
from bpf.guard_plan import spec_from_plan
from bpf.object import XdpAction

# A guard applies one spec at a time; one load serves every run in this process.
_LOCK = threading.Lock()
_SHARED: list[Guard] = []
CLOCK_START_NS = 10**12


def run_expects_in(guard: Guard, res, plan, lists) -> list[tuple[int, int, str]]:
    """(expect index, copy, actual) for each expect line the guard decides otherwise."""
    from rules_dsl.packet import build_frame

    guard.apply(spec_from_plan(plan, lists))
    now, failed, monitor = 0, [], plan.xdp.mode == "monitor"
    for index, expect in enumerate(res.expects):
        now = max(now, expect.at_ns or 0)
        guard.set_clock(CLOCK_START_NS + now)
        frame = build_frame(expect.packet)
        for copy in range(expect.repeat):
            if monitor:  # everything passes: the drop counters say what enforce would do
                before = sum(c.dropped for c in guard.counters().values())
                guard.program.test_run(frame)
                dropped = sum(c.dropped for c in guard.counters().values()) > before
            else:
                dropped = guard.program.test_run(frame).retval == XdpAction.DROP
            actual = "drop" if dropped else "pass"
            if actual != expect.verdict:
                failed.append((index, copy + 1, actual))
                break
    return failed


def run_in_guard(res, plan, lists) -> list[tuple[int, int, str]]:
    """`run_expects_in` on this process's shared guard, loaded on first use. Raises
    BpfError when the kernel refuses (no root, no BPF)."""
    with _LOCK:
        if not _SHARED:
            _SHARED.append(Guard())
        return run_expects_in(_SHARED[0], res, plan, lists)

"""Running a file's expect lines against its own Plan (`bulwark rules test`).

Expect lines run in file order against one evolving rate-limit state. The clock starts at
0; `at T` sets it (it never goes back); `x N` sends N copies at that instant, each of which
must get the expected verdict. In monitor mode the expected verdict is what enforce mode
would do (`Decision.would_drop`). `test list "NAME" { ... }` gives hub lists their contents.
"""
from __future__ import annotations

from dataclasses import dataclass

from .evaluate import AddressIndex, Decision, evaluate
from .fmt import format_packet
from .plan import Plan
from .resolve import Resolved


@dataclass(frozen=True)
class Outcome:
    line: int
    packet: str
    expected: str
    actual: str
    decision: Decision
    copy: int            # which copy of `x N` failed (1-based), or the last one
    passed: bool

    def render(self, filename: str, plan: Plan) -> str:
        rule = ("the default" if self.decision.rule is None and self.decision.reason == "default"
                else f"{self.decision.reason} packet handling" if self.decision.rule is None
                else f"rule {self.decision.rule + 1}: {plan.xdp.rules[self.decision.rule].text}")
        head = f"{filename}:{self.line}: {'ok' if self.passed else 'FAIL'}: {self.packet}"
        if self.passed:
            return head
        return (f"{head}\n    expected: {self.expected}\n    actual:   {self.actual}"
                f" (copy {self.copy}, decided by {rule}, {self.decision.reason})")


def run_expects(res: Resolved, plan: Plan) -> list[Outcome]:
    lists = {name: AddressIndex(nets) for name, nets in res.test_lists.items()}
    state, now = None, 0
    out = []
    for e in res.expects:
        if e.at_ns is not None:
            now = max(now, e.at_ns)
        result = None
        for k in range(e.repeat):
            decision, state = evaluate(plan, e.packet, state, now, lists=lists)
            actual = "drop" if decision.would_drop else "pass"
            if actual != e.verdict or k == e.repeat - 1:
                result = Outcome(e.node.pos.line, format_packet(e.node.packet), e.verdict, actual,
                                 decision, k + 1, actual == e.verdict)
                if actual != e.verdict:
                    break
        out.append(result)
    return out

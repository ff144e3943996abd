"""The publication pipeline: a template version is publishable only when, for its
defaults and every boundary value (`templates.parameter_sets`), the rendered policy
checks without errors, has expect lines, and every expect line holds in the reference
evaluator and — through `guard`, a callable the caller supplies (the hub and CI pass
`bpf.vectors.run_in_guard`, BPF_PROG_TEST_RUN on the loaded XDP program) — in the
kernel too. Pure: the kernel is reached only through that callable.

    verify(template, guard) -> Report      never raises for a bad template
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .check import check_resolved, sort_diagnostics
from .compiler import compile_resolved
from .errors import DslError
from .expects import run_expects
from .fmt import format_packet
from .plan import Plan
from .resolve import Resolved
from .templates import Template, parameter_sets, render

# (resolved, plan, lists) -> [(expect index, copy, actual verdict)] for each expect line
# whose verdict in the guard differs from what it expects
GuardRun = Callable[[Resolved, Plan, dict], list[tuple[int, int, str]]]


@dataclass(frozen=True)
class Failure:
    case: str            # "defaults" or "PARAM=VALUE"
    stage: str           # checker | vectors | reference | guard
    line: int            # line in the template file (0: the whole policy)
    message: str

    def render(self, template: Template) -> str:
        where = f"{template.filename}:{self.line}" if self.line else template.filename
        return f"{where}: {template.slug} v{template.version} with {self.case}: {self.stage}: {self.message}"


@dataclass(frozen=True)
class Report:
    slug: str
    version: int
    cases: tuple[str, ...]
    vectors: int          # expect lines run, over all cases
    guard_ran: bool
    failures: tuple[Failure, ...]

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def publishable(self) -> bool:
        return self.ok and self.guard_ran


def verify(template: Template, guard: GuardRun | None) -> Report:
    failures: list[Failure] = []
    cases, vectors = [], 0
    for label, values in parameter_sets(template):
        cases.append(label)
        found, n = _case(template, label, values, guard)
        failures += found
        vectors += n
    return Report(template.slug, template.version, tuple(cases), vectors, guard is not None, tuple(failures))


def _case(template: Template, label: str, values: dict, guard: GuardRun | None) -> tuple[list[Failure], int]:
    from .syntax import parse

    text = render(template, values).text
    offset = template.policy_line

    def at(line: int) -> int:
        return offset + line if line else 0

    try:
        policy = parse(text, template.filename)
    except DslError as exc:
        return [Failure(label, "checker", at(d.line), d.message) for d in exc.diagnostics], 0
    res, diags = check_resolved(policy, None)
    errors = [d for d in sort_diagnostics(diags) if d.severity == "error"]
    if errors:
        return [Failure(label, "checker", at(d.line), d.message) for d in errors], 0
    if not res.expects:
        return [Failure(label, "vectors", 0, "the policy has no expect lines (test vectors)")], 0
    plan = compile_resolved(res)
    out = [Failure(label, "reference", at(o.line),
                   f"expect {o.expected} {o.packet}: the reference evaluator says {o.actual} (copy {o.copy})")
           for o in run_expects(res, plan) if not o.passed]
    if guard is not None:
        lists = {name: [str(net) for net in nets] for name, nets in res.test_lists.items()}
        for index, copy, actual in guard(res, plan, lists):
            e = res.expects[index]
            out.append(Failure(label, "guard", at(e.node.pos.line),
                               f"expect {e.verdict} {format_packet(e.node.packet)}: "
                               f"the guard (BPF_PROG_TEST_RUN) says {actual} (copy {copy})"))
    return out, len(res.expects)

"""Bulwark's policy language: parse, check, compile to a Plan, and evaluate a Plan.

Pure: text in, frozen values out; no I/O, no kernel (the CLI in `rules_dsl.cli` is the
only module that reads files). Reference: docs/dsl.md (language), docs/plan.md (Plan).

    parse(text, filename)  -> Policy          raises ParseError
    check(policy, mgmt)    -> [Diagnostic]
    compile(policy, mgmt)  -> Plan            raises CheckError when check finds errors
    load(text, filename, mgmt) -> Checked     never raises for bad input (the hub's call)
    evaluate(plan, packet, state, now_ns) -> (Decision, State)
"""
from __future__ import annotations

from dataclasses import dataclass

from .check import Management, check, check_resolved, sort_diagnostics
from .compiler import compile_resolved
from .diagnostics import Diagnostic
from .errors import CheckError, DslError, ParseError, PlanError
from .evaluate import AddressIndex, Bucket, Decision, State, evaluate
from .fmt import fmt
from .nodes import Policy
from .packet import Packet, build_frame, parse_frame
from .plan import SCHEMA_VERSION, Plan
from .syntax import parse, parse_packet

__all__ = [
    "AddressIndex", "Bucket", "CheckError", "Checked", "Decision", "Diagnostic", "DslError",
    "Management", "Packet", "ParseError", "Plan", "PlanError", "Policy", "SCHEMA_VERSION",
    "State", "build_frame", "check", "compile", "evaluate", "fmt", "load", "parse",
    "parse_frame", "parse_packet",
]


@dataclass(frozen=True)
class Checked:
    """What `load` found: the policy and plan when they could be made, and every finding."""
    policy: Policy | None
    plan: Plan | None
    diagnostics: tuple[Diagnostic, ...]

    @property
    def ok(self) -> bool:
        return self.plan is not None


def compile(policy: Policy, management: Management | None = None) -> Plan:  # noqa: A001
    """The Plan for `policy`. Raises CheckError when the checker finds any error."""
    res, diags = check_resolved(policy, management)
    errors = [d for d in diags if d.severity == "error"]
    if errors:
        raise CheckError(sort_diagnostics(errors))
    return compile_resolved(res)


def load(text: str, filename: str = "<policy>", management: Management | None = None) -> Checked:
    """Parse, check and compile; bad input gives diagnostics, never an exception."""
    try:
        policy = parse(text, filename)
    except ParseError as exc:
        return Checked(None, None, tuple(exc.diagnostics))
    res, diags = check_resolved(policy, management)
    diags = sort_diagnostics(diags)
    if any(d.severity == "error" for d in diags):
        return Checked(policy, None, tuple(diags))
    return Checked(policy, compile_resolved(res), tuple(diags))

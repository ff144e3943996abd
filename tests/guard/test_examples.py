"""Every example policy's expect lines hold in the kernel too, packet for packet."""
from __future__ import annotations

from pathlib import Path

import pytest

from bpf.vectors import run_expects_in
from rules_dsl import build_frame, parse
from rules_dsl.check import check_resolved
from rules_dsl.compiler import compile_resolved
from tests.guard.harness import compare

pytestmark = pytest.mark.kernel

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.bw"))


def compiled(path: Path):
    res, diagnostics = check_resolved(parse(path.read_text(), path.name), None)
    assert not [d for d in diagnostics if d.severity == "error"], [d.render() for d in diagnostics]
    lists = {name: [str(net) for net in nets] for name, nets in res.test_lists.items()}
    return res, compile_resolved(res), lists


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_expect_lines_hold_in_the_guard(guard, path):
    res, plan, lists = compiled(path)
    failed = run_expects_in(guard, res, plan, lists)
    assert not failed, [f"{path.name}:{res.expects[i].node.pos.line} copy {c}: got {a}" for i, c, a in failed]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_examples_agree_with_the_evaluator_on_their_own_packets(guard, path):
    res, plan, lists = compiled(path)
    frames, now = [], 0
    for expect in res.expects:
        now = max(now, expect.at_ns or 0)
        frames += [(build_frame(expect.packet), now)] * expect.repeat
    compare(guard, plan, frames, lists)

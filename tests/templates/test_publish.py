"""The publication pipeline: every shipped template passes it (checker, reference
evaluator, and the guard through BPF_PROG_TEST_RUN); a broken one is refused with the
failing vector named."""
from __future__ import annotations

import pytest

from rules_dsl.publish import verify
from rules_dsl.templates import parse_template
from tests.templates.test_templates import SHIPPED_FILES, SMALL


def _small(edit=lambda s: s):
    return parse_template(edit(SMALL), "small.toml")


def test_a_sound_template_passes_without_the_guard_but_is_not_publishable():
    report = verify(_small(), None)
    assert report.ok and not report.guard_ran and not report.publishable
    assert report.cases[0] == "defaults" and report.vectors == 3 * len(report.cases)


def test_a_vector_that_fails_only_at_a_bound_is_named_with_that_bound():
    # a limit that caps the rate at 500: the default (100) holds, rate=1000 does not
    t = _small(lambda s: s.replace("limit {{rate}}/second per src",
                                   "limit {{rate}}/second per src limit 500/second global"))
    report = verify(t, None)
    assert not report.ok
    [f] = report.failures
    assert (f.case, f.stage, f.line) == ("rate=1000", "reference", 14)
    assert "expect pass udp 192.0.2.1:4000 -> 192.0.2.2:27015" in f.message and "(copy 501)" in f.message
    assert f.render(t).startswith("small.toml:14: small v3 with rate=1000: reference:")


def test_a_template_that_does_not_check_is_refused_with_the_checker_line():
    t = _small(lambda s: s.replace("pass tcp from @admins dport 22", "pass tcp from @admins dport 70000"))
    report = verify(t, None)
    assert {f.stage for f in report.failures} == {"checker"} and report.failures[0].line == 12


def test_a_template_without_vectors_is_refused():
    t = _small(lambda s: "\n".join(ln for ln in s.splitlines() if not ln.startswith("expect")
                                   and "{{ports.lo}}" not in ln) .replace(
        "pass udp dport {{ports}}", "pass udp dport {{ports}} # {{ports.lo}}"))
    assert [f.stage for f in verify(t, None).failures][:1] == ["vectors"]


def test_the_guard_stage_reports_what_the_kernel_said():
    """A guard that disagrees (as a kernel bug would) refuses the template: the pipeline
    trusts neither side alone."""
    t = _small()

    def contrary(res, plan, lists):
        return [(1, 1, "pass")]

    report = verify(t, contrary)
    assert not report.publishable
    assert report.failures[0].stage == "guard" and report.failures[0].line == 15
    assert "expect drop udp 192.0.2.1:4000 -> 192.0.2.2:27030" in report.failures[0].message
    assert "BPF_PROG_TEST_RUN" in report.failures[0].message


@pytest.mark.kernel
@pytest.mark.parametrize("path", SHIPPED_FILES, ids=[p.stem for p in SHIPPED_FILES])
def test_every_shipped_template_is_publishable(path):
    from bpf.vectors import run_in_guard

    t = parse_template(path.read_text(), path.name)
    report = verify(t, run_in_guard)
    assert report.publishable, "\n".join(f.render(t) for f in report.failures)
    assert len(report.cases) > len(t.params)  # the defaults and at least one bound each


@pytest.mark.kernel
def test_a_broken_template_is_refused_by_the_guard_stage_too():
    """The same broken vector through the real kernel: named, with its bound."""
    from bpf.vectors import run_in_guard

    t = _small(lambda s: s.replace("limit {{rate}}/second per src",
                                   "limit {{rate}}/second per src limit 500/second global"))
    report = verify(t, run_in_guard)
    assert {(f.case, f.stage, f.line) for f in report.failures} == {("rate=1000", "reference", 14),
                                                                   ("rate=1000", "guard", 14)}

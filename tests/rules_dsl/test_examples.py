"""Every example and every docs snippet checks clean; examples' expect lines pass."""
from __future__ import annotations

import pathlib
import re

import pytest

import rules_dsl
from rules_dsl.check import check_resolved
from rules_dsl.expects import run_expects

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.bw"))


def test_there_are_the_five_worked_examples():
    assert {p.stem for p in EXAMPLES} >= {"web", "game", "dns", "ssh", "mail"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_is_clean_canonical_and_its_expects_pass(path):
    text = path.read_text()
    checked = rules_dsl.load(text, path.name)
    assert [d.render() for d in checked.diagnostics] == []
    assert rules_dsl.fmt(checked.policy) == text
    outcomes = run_expects(check_resolved(checked.policy, None)[0], checked.plan)
    assert outcomes and all(o.passed for o in outcomes), [o.render(path.name, checked.plan)
                                                         for o in outcomes if not o.passed]


def _snippets(doc: str):
    text = (ROOT / "docs" / doc).read_text()
    return re.findall(r"```bw\n(.*?)```", text, re.S)


@pytest.mark.parametrize("doc", ["dsl.md"])
def test_docs_snippets_parse_and_check_without_errors(doc):
    snippets = _snippets(doc)
    assert snippets
    for s in snippets:
        text = s if s.lstrip().startswith(("policy", "#")) and "default" in s \
            else 'policy "doc"\ndefault pass\n' + s
        checked = rules_dsl.load(text, doc)
        errors = [d.render() for d in checked.diagnostics if d.severity == "error"]
        assert not errors, (s, errors)
        outcomes = run_expects(check_resolved(checked.policy, None)[0], checked.plan)
        assert all(o.passed for o in outcomes), s

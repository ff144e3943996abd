"""Parsing: the language's forms, and syntax errors that point and help."""
from __future__ import annotations

import pytest

import rules_dsl
from rules_dsl import DslError, ParseError, nodes as n

from .helpers import HEADER


def test_a_rule_reads_like_pf_and_nft():
    p = rules_dsl.parse(HEADER + "pass tcp from { 192.0.2.0/24, @x } dport 80, 443 "
                        "flags syn/syn|ack limit 10/second burst 20 per src ipv6/64 block 10m\n"
                        "set x { 2001:db8::/32 }\n")
    r = p.rules[0]
    assert r.action.value == "pass"
    assert r.src == (n.Addr("192.0.2.0/24"), n.SetRef("x"))
    assert r.dport == (n.PortRange(80, 80), n.PortRange(443, 443))
    assert r.flags == (n.FlagCombo(("syn",), ("syn", "ack")),)
    assert r.limits == (n.Limit(10, "packets", "second", 20, None, n.Key("src", None, 64), 600),)


def test_synonyms_are_normalised():
    a = rules_dsl.parse(HEADER + "pass tcp dport 1 limit 5/s block 60s")
    b = rules_dsl.parse(HEADER + "pass tcp dport 1 limit 5/second block 1m")
    assert a == b


def test_positions_do_not_take_part_in_equality():
    a = rules_dsl.parse(HEADER + "drop   from 192.0.2.1")
    b = rules_dsl.parse("\n\n" + HEADER + "drop from 192.0.2.1")
    assert a == b and a.rules[0].pos != b.rules[0].pos


@pytest.mark.parametrize("text, line, col, message, hint", [
    (HEADER + "pass tcp port 22", 3, 10, "unexpected word 'port'", "did you mean 'dport'?"),
    (HEADER + "pass tcp flags sin", 3, 16, "unknown TCP flag 'sin'", "did you mean 'syn'?"),
    (HEADER + "drop from 192.0.2.1;", 3, 20, "unexpected character ';'", "remove the ';'"),
    (HEADER + "pass tcp dport 22 dport 23", 3, 19, "'dport' is given twice", "{ a, b }"),
    (HEADER + "mode monitr", 3, 6, "unknown mode 'monitr'", "did you mean 'monitor'?"),
    (HEADER + "pass limit 10/second from 192.0.2.1", 3, 22, "matchers come before 'limit'", None),
    (HEADER + "accept tcp", 3, 1, "a rule starts with its verdict", "did you mean 'pass'?"),
    (HEADER + "set x { 192.0.2.1", 3, 18, "is a '}' missing?", None),
    (HEADER + "pass limit 10/secnd", 3, 15, "unknown time unit 'secnd'", "did you mean 'second'?"),
    (HEADER + "pass limit 1/second block 600", 3, 27, "a duration needs a unit", None),
])
def test_syntax_errors_are_named_and_point_at_the_fault(text, line, col, message, hint):
    with pytest.raises(ParseError) as info:
        rules_dsl.parse(text, "t.bw")
    d = info.value.diagnostics[0]
    assert (d.line, d.col) == (line, col), d.render()
    assert message in d.message
    if hint:
        assert hint in (d.hint or "")


def test_render_shows_file_line_col_source_caret_and_hint():
    with pytest.raises(DslError) as info:
        rules_dsl.parse(HEADER + "pass tcp port 22", "web.bw")
    text = info.value.diagnostics[0].render()
    assert text.splitlines() == [
        "web.bw:3:10: error: unexpected word 'port'",
        "    pass tcp port 22",
        "             ^~~~",
        "hint: did you mean 'dport'?",
    ]


def test_comments_and_strings():
    p = rules_dsl.parse('policy "a # b"  # real comment\ndefault drop\n')
    assert p.name.value == "a # b"
    assert [c.text for c in p.comments] == ["# real comment"]


def test_the_grammar_is_strict_lalr():
    pytest.importorskip("interegular", reason="lark's strict mode needs interegular")
    from rules_dsl.syntax import parser
    assert parser().options.strict and parser().options.parser == "lalr"


@pytest.mark.parametrize("typo,meant", [("dprot", "dport"), ("sprot", "sport"), ("prot", "proto")])
def test_a_slip_of_the_keyboard_gets_the_word_meant(typo, meant):
    with pytest.raises(ParseError) as caught:
        rules_dsl.parse(HEADER + f"drop tcp {typo} 22\n")
    assert caught.value.diagnostics[0].hint == f"did you mean '{meant}'?"


@pytest.mark.parametrize("number", ["9" * 5000, "1" * 21 + "s", "10.0.0." + "1" * 30])
def test_huge_numbers_are_stopped_by_the_lexer_with_a_located_error(number):
    text = HEADER + "pass tcp dport 1\n" + ("pass limit 1/second block " + number if number.endswith("s")
                                          else "drop from " + number if "." in number
                                          else "pass tcp dport " + number)
    with pytest.raises(ParseError) as err:
        rules_dsl.parse(text)
    (d,) = err.value.diagnostics
    assert (d.line, d.message) == (4, "a number may have at most 20 digits")
    assert d.col > 1


def test_the_editors_keywords_are_the_grammars_literal_words():
    """The panel highlights what the grammar accepts: every quoted word of bulwark.lark,
    nothing else (a word added to the grammar is highlighted without editing the editor)."""
    import importlib.resources
    import re as _re

    from rules_dsl.syntax import keywords

    grammar = importlib.resources.files("rules_dsl").joinpath("bulwark.lark").read_text()
    rules = "\n".join(line for line in grammar.splitlines() if not line.lstrip().startswith("//"))
    quoted = set(_re.findall(r'"([A-Za-z][A-Za-z0-9-]*)"', rules))
    assert set(keywords()) == quoted
    assert {"policy", "lockout-guard", "synproxy", "expect", "pass", "drop"} <= set(keywords())

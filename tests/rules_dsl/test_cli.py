"""`bulwark rules ...` exit codes and output."""
from __future__ import annotations

import json
import pathlib

from rules_dsl.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[2]
WEB = str(ROOT / "examples" / "web.bw")


def test_check(tmp_path, capsys):
    assert main(["check", WEB]) == 0
    bad = tmp_path / "bad.bw"
    bad.write_text('policy "b"\ndefault drop\npass tcp port 22\n')
    assert main(["check", str(bad)]) == 1
    assert "bad.bw:3:10: error:" in capsys.readouterr().err


def test_check_with_management_lockout(tmp_path, capsys):
    f = tmp_path / "l.bw"
    f.write_text('policy "l"\ndefault pass\ndrop tcp dport 22\n')
    assert main(["check", str(f), "--admin", "10.0.0.0/8"]) == 1
    assert "lock the operator out" in capsys.readouterr().err


def test_fmt(tmp_path):
    f = tmp_path / "f.bw"
    f.write_text('policy "f"\n   default drop\npass  tcp flags ack/syn|ack\n')
    assert main(["fmt", "--check", str(f)]) == 1
    assert main(["fmt", str(f)]) == 0
    assert main(["fmt", "--check", str(f)]) == 0


def test_compile_writes_the_plan(tmp_path):
    out = tmp_path / "plan.json"
    assert main(["compile", WEB, "-o", str(out)]) == 0
    assert json.loads(out.read_text())["schema_version"] == 2


def test_explain_eval_and_test(capsys):
    assert main(["explain", WEB]) == 0
    assert "first that matches decides" in capsys.readouterr().out
    assert main(["eval", WEB, "tcp", "203.0.113.9:4000", "->", "192.0.2.1:22", "flags", "syn"]) == 0
    assert capsys.readouterr().out.startswith("drop")
    assert main(["test", WEB]) == 0


def test_test_reports_failures(tmp_path, capsys):
    f = tmp_path / "t.bw"
    f.write_text('policy "t"\ndefault pass\ndrop tcp dport 22\n'
                 "expect pass tcp 192.0.2.1:4000 -> 192.0.2.2:22 flags syn\n")
    assert main(["test", str(f)]) == 1
    out = capsys.readouterr().out
    assert "expected: pass" in out and "actual:   drop" in out and "rule 1" in out


def test_usage_errors_exit_2(capsys):
    assert main([]) == 2
    assert main(["check", "/nonexistent.bw"]) == 2

"""The one `bulwark` entry point and its dispatch to the parts."""
from __future__ import annotations

import argparse
import subprocess
import sys

from bulwark.cli import main


def test_help_lists_every_part(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(part in out for part in ("rules", "agent", "hub"))


def test_unknown_command_is_a_usage_error(capsys):
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_console_script_is_installed():
    exe = sys.executable.replace("/python", "/bulwark")
    result = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and "usage: bulwark" in result.stdout


def _parsers():
    """Every part's argparse parser (the entry point itself has no argparse: its `usage`
    names each part with a line of help)."""
    from agent.cli import _parser as agent_parser
    from hub.cli import _parser as hub_parser
    from rules_dsl.cli import build_parser

    return {"agent": agent_parser(), "hub": hub_parser(), "rules": build_parser()}


def _undocumented(parser: argparse.ArgumentParser, path: str) -> list[str]:
    """The options, positionals and subcommands under `parser` with no help text."""
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            documented = {a.dest for a in action._choices_actions if a.help}
            for name, sub in action.choices.items():
                if name not in documented:
                    missing.append(f"{path} {name}")
                missing += _undocumented(sub, f"{path} {name}")
        elif action.help is None:
            missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    return missing


def test_every_option_and_subcommand_has_help():
    missing = [m for part, p in _parsers().items() for m in _undocumented(p, f"bulwark {part}")]
    assert missing == []


def test_the_walker_sees_a_missing_help():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers()
    child = sub.add_parser("child")
    child.add_argument("--bare")
    child.add_argument("--quiet", help=argparse.SUPPRESS)
    assert _undocumented(p, "x") == ["x child", "x child --bare"]


def test_entry_point_describes_every_part():
    from bulwark.cli import PARTS

    assert all(about for _, about in PARTS.values())

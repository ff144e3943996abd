"""The one `bulwark` entry point and its dispatch to the parts."""
from __future__ import annotations

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

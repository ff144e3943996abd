"""The join token never needs argv: --token-stdin or BULWARK_JOIN_TOKEN; none is one line, exit 2."""
from __future__ import annotations

import os
import subprocess
import sys


def enroll(tmp_path, *args, stdin="", env=None):
    base = {k: v for k, v in os.environ.items() if k != "BULWARK_JOIN_TOKEN"}
    return subprocess.run([sys.executable, "-m", "bulwark.cli", "agent", "enroll", "--hub", "http://127.0.0.1:9",
                           "--allow-insecure-http", "--state-root", str(tmp_path), *args],
                          input=stdin, capture_output=True, text=True, timeout=60, env={**base, **(env or {})})


def test_no_token_is_one_line_naming_both_ways(tmp_path):
    out = enroll(tmp_path)
    assert out.returncode == 2 and "--token-stdin" in out.stderr and "BULWARK_JOIN_TOKEN" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_token_from_stdin_or_the_environment_reaches_the_hub(tmp_path):
    for out in (enroll(tmp_path, "--token-stdin", stdin="bwj_x_y\n"),
                enroll(tmp_path, env={"BULWARK_JOIN_TOKEN": "bwj_x_y"})):
        assert out.returncode == 1 and "cannot reach" in out.stderr, out.stderr  # port 9: nobody there


def test_token_and_token_stdin_together_are_refused(tmp_path):
    out = enroll(tmp_path, "--token", "a", "--token-stdin")
    assert out.returncode == 2 and "not allowed with" in out.stderr

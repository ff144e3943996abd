"""`bulwark agent enroll` takes the join token from stdin or the environment, so the
command the panel shows never puts it in argv (visible to every user in `ps`)."""
from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys

import pytest

from agent.cli import TOKEN_ENV, join_token
from agent.errors import ConfigError


def _args(**kw) -> argparse.Namespace:
    return argparse.Namespace(token_stdin=kw.get("token_stdin", False), token=kw.get("token"))


def test_the_token_comes_from_stdin_then_the_environment_then_the_flag(capsys):
    assert join_token(_args(token_stdin=True), {}, io.StringIO("bwj_a\nrest\n")) == "bwj_a"
    assert join_token(_args(), {TOKEN_ENV: " bwj_b "}, io.StringIO("")) == "bwj_b"
    assert capsys.readouterr().err == ""
    assert join_token(_args(token="bwj_c"), {}, io.StringIO("")) == "bwj_c"
    assert "visible to every user" in capsys.readouterr().err


@pytest.mark.parametrize("stdin", ["", "\n", "   \n"])
def test_no_token_is_a_config_error(stdin):
    with pytest.raises(ConfigError, match="stdin"):
        join_token(_args(token_stdin=True), {}, io.StringIO(stdin))
    with pytest.raises(ConfigError):
        join_token(_args(), {}, io.StringIO(stdin))


def test_a_huge_stdin_is_read_only_to_its_first_4_kib():
    assert len(join_token(_args(token_stdin=True), {}, io.StringIO("x" * 10**6))) == 4096


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

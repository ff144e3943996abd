"""`bulwark agent run` as a real process: it applies the policy, serves /status and
/metrics, and a SIGTERM stops it gracefully with the protections left in place."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from agent.dataplane import normalized
from tests.agent.conftest import (
    POLICY_A,
    VERDICT_A,
    free_port,
    guard_verdicts,
    nft_table,
    udp_delivered,
)

pytestmark = pytest.mark.kernel
ROOT = Path(__file__).resolve().parents[2]


def test_run_serves_status_and_stops_gracefully(veth_lab, pin_dir, tmp_path):
    lab = veth_lab
    lab.add_peer_address("203.0.113.9")
    (tmp_path / "a.bw").write_text(POLICY_A)
    port = free_port()
    (tmp_path / "agent.toml").write_text(f'sample_interval_s = 0.3\nhttp_port = {port}\n')
    argv = [sys.executable, "-c", "import sys; from agent.cli import main; sys.exit(main(sys.argv[1:]))",
            "run", "--config", str(tmp_path / "agent.toml"), "--policy", str(tmp_path / "a.bw"),
            "--name", "r", "--iface", lab.iface, "--netns", lab.ns, "--pin-root", pin_dir,
            "--state-root", str(tmp_path / "state")]
    child = subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        status = None
        while time.monotonic() < deadline and child.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=1) as r:
                    status = json.loads(r.read())
                if status["mode"] == "enforce":
                    break
            except OSError:
                pass
            time.sleep(0.1)
        assert status and status["mode"] == "enforce", child.stderr.read() if child.poll() is not None else status
        assert udp_delivered(lab, "203.0.113.9", 5000) == 0
        time.sleep(1)  # a few samples
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=1) as r:
            status = json.loads(r.read())
        assert status["top_sources"] and status["top_sources"][0]["source"] == "203.0.113.9"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as r:
            assert b"bulwark_rule_drops_per_second" in r.read()
        # `status` shows the daemon's live view on top of the pins
        out = subprocess.run([sys.executable, "-c", "import sys; from agent.cli import main; sys.exit(main(sys.argv[1:]))",
                              "status", "--json", "--config", str(tmp_path / "agent.toml"), "--name", "r",
                              "--pin-root", pin_dir, "--state-root", str(tmp_path / "state")],
                             cwd=ROOT, capture_output=True, text=True, timeout=30)
        st = json.loads(out.stdout)
        assert st["attached"] and st["daemon"]["mode"] == "enforce"
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=10) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stderr.close()
    assert guard_verdicts(f"{pin_dir}/r") == VERDICT_A  # stopped, still enforcing
    assert udp_delivered(lab, "203.0.113.9", 5000) == 0


def test_apply_under_ip_netns_exec_points_at_netns(veth_lab, pin_dir, tmp_path):
    """`ip netns exec` gives the command its own /sys, with no bpffs at /sys/fs/bpf: the
    agent says to pass --netns instead of failing on a missing directory."""
    lab = veth_lab
    (tmp_path / "a.bw").write_text(POLICY_A)
    argv = ["ip", "netns", "exec", lab.ns, sys.executable, "-c",
            "import sys; from agent.cli import main; sys.exit(main(sys.argv[1:]))",
            "apply", str(tmp_path / "a.bw"), "--name", "x", "--iface", lab.iface, "--pin-root", pin_dir,
            "--state-root", str(tmp_path / "state")]
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "run without `ip netns exec` and pass --netns " + lab.ns in line
    assert not list(Path(pin_dir).iterdir())  # nothing made anywhere


def _agent(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "import sys; from agent.cli import main; sys.exit(main(sys.argv[1:]))",
                           *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_second_agent_on_a_guarded_interface_is_told_which(veth_lab, pin_dir, tmp_path):
    lab = veth_lab
    lab.add_peer_address("203.0.113.9")
    (tmp_path / "a.bw").write_text(POLICY_A)

    def apply(name: str, pin_root: str) -> subprocess.CompletedProcess:
        return _agent("apply", str(tmp_path / "a.bw"), "--name", name, "--iface", lab.iface, "--netns", lab.ns,
                      "--pin-root", pin_root, "--state-root", str(tmp_path / name))

    first = apply("first", pin_dir)
    assert first.returncode == 0, first.stderr
    table = nft_table(lab.ns)
    second = apply("second", pin_dir)
    assert second.returncode == 1
    (line,) = second.stderr.strip().splitlines()
    assert f"{lab.iface} is already guarded by agent 'first' (pins {pin_dir}/first)" in line, line
    run = _agent("run", "--policy", str(tmp_path / "a.bw"), "--name", "second", "--iface", lab.iface,
                 "--netns", lab.ns, "--pin-root", pin_dir, "--state-root", str(tmp_path / "second"))
    assert run.returncode == 1 and "is already guarded by agent 'first'" in run.stderr, run.stderr
    # an agent whose pin root holds no such link only knows the program's id
    other_root = Path(pin_dir) / "elsewhere"
    other_root.mkdir()
    third = apply("third", str(other_root))
    assert third.returncode == 1
    assert "already guarded by another XDP program (id " in third.stderr, third.stderr
    # the first agent's protections are as it left them, and it still re-applies
    assert normalized(nft_table(lab.ns)) == normalized(table)
    assert udp_delivered(lab, "203.0.113.9", 5000) == 0
    again = apply("first", pin_dir)
    assert again.returncode == 0, again.stderr

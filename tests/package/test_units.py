"""The systemd units as `systemd-analyze security --offline` judges them (printed, ≤ 4.0),
and the readiness notification the agent unit waits for (Type=notify)."""
from __future__ import annotations

import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from agent import sd_notify

UNITS = Path(__file__).resolve().parents[2] / "packaging" / "systemd"
MAX_EXPOSURE = 4.0


def exposure(unit: Path) -> float:
    out = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)],
                         capture_output=True, text=True, timeout=60)
    found = re.search(r"Overall exposure level for \S+: ([\d.]+)", out.stdout + out.stderr)
    assert found, out.stdout + out.stderr
    return float(found.group(1))


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing (apt systemd)")
@pytest.mark.parametrize("name", ["bulwark-agent.service", "bulwark-hub.service"])
def test_unit_exposure_is_at_most_4(name):
    score = exposure(UNITS / name)
    print(f"\nsystemd-analyze security --offline=true {name}: {score}")
    assert score <= MAX_EXPOSURE


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing (apt systemd)")
@pytest.mark.parametrize("name", ["bulwark-agent.service", "bulwark-hub.service"])
def test_unit_verifies_clean(name):
    """No unknown directive or malformed value (a typo would silently weaken the sandbox)."""
    out = subprocess.run(["systemd-analyze", "verify", "--man=no", str(UNITS / name)],
                         capture_output=True, text=True, timeout=60)
    complaints = [line for line in (out.stdout + out.stderr).splitlines()
                  if "Unknown" in line or "Failed to parse" in line or "Invalid" in line]
    assert not complaints, complaints


def test_the_agent_unit_waits_for_readiness_and_never_enables_itself():
    text = (UNITS / "bulwark-agent.service").read_text()
    assert "Type=notify" in text and "Restart=always" in text
    assert "ConditionPathExists=/etc/bulwark/agent.toml" in text  # nothing runs before enrolment


@pytest.mark.parametrize("abstract", [False, True])
def test_notify_sends_one_datagram(tmp_path, abstract):
    address = f"@bulwark-test-{tmp_path.name}" if abstract else str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + address[1:] if abstract else address)
        assert sd_notify.notify("READY=1\nSTATUS=x", {"NOTIFY_SOCKET": address})
        assert server.recv(4096) == b"READY=1\nSTATUS=x"


@pytest.mark.parametrize("value", ["", "relative/path", "x" * 5000, "/nonexistent/socket", "\0/bad"])
def test_notify_outside_systemd_or_on_a_bad_socket_is_a_no_op(value):
    assert sd_notify.notify("READY=1", {"NOTIFY_SOCKET": value}) is False
    assert sd_notify.notify("READY=1", {}) is False

"""bpffs on a fresh machine: /sys/fs/bpf is then sysfs's empty directory, where no
directory can be made, so a pin root below it (the agent's default, /sys/fs/bpf/bulwark)
needs the bpffs mounted at /sys/fs/bpf itself first."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).resolve().parents[2]

# Runs in a private mount namespace: unmounting bpffs there leaves the host's alone.
FRESH_MACHINE = r"""
import subprocess, sys
from pathlib import Path
while subprocess.run(["umount", "/sys/fs/bpf"], capture_output=True).returncode == 0:
    pass
from bpf.pins import ensure_bpffs, mount_point_of
assert mount_point_of(Path("/sys/fs/bpf"))[1] == "sysfs", mount_point_of(Path("/sys/fs/bpf"))
root = ensure_bpffs("/sys/fs/bpf/bulwark-fresh/run")
print(mount_point_of(root), root.is_dir())
"""


def test_a_pin_root_below_sys_fs_bpf_mounts_bpffs_there_on_a_fresh_machine():
    out = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable, "-c", FRESH_MACHINE],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "('/sys/fs/bpf', 'bpf') True"

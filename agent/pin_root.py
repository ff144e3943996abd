"""The pin root must be the host's bpffs, and `ip netns exec` hides it.

`ip netns exec NS` gives the command its own mount namespace with a fresh /sys for NS,
where /sys/fs/bpf is an empty sysfs directory: pins cannot be made there, and a bpffs
mounted there would be a private one that the next agent run would not see. The agent
enters the namespace itself for netlink and nftables (`--netns NS`) and keeps its pins
on the host's bpffs, so the fix to tell the user is to run it that way.
"""
from __future__ import annotations

import os
from pathlib import Path

from agent.errors import ConfigError
from bpf import ensure_bpffs
from bpf.pins import on_bpffs

NETNS_DIR = Path("/run/netns")


def _ns_id(path: str | os.PathLike) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def entered_netns() -> str | None:
    """The name of the network namespace this process was started in by `ip netns exec`
    (found under /run/netns), "?" for another unnamed one than init's, else None."""
    here = _ns_id("/proc/self/ns/net")
    if here is None:
        return None
    try:
        names = sorted(os.listdir(NETNS_DIR))
    except OSError:
        names = []
    named = next((name for name in names if _ns_id(NETNS_DIR / name) == here), None)
    if named is not None:
        return named
    init = _ns_id("/proc/1/ns/net")  # not readable in every container
    return "?" if init is not None and init != here else None


def ensure_pin_root(root: str | os.PathLike) -> Path:
    """`ensure_bpffs(root)`, except inside an `ip netns exec` namespace with no bpffs at
    `root`: there a mount would be private to this process (its pins gone when it exits),
    so that is the caller's invocation (ConfigError, exit 2), said with how to run instead."""
    name = entered_netns()
    if name is None or on_bpffs(Path(root)):
        return ensure_bpffs(root)
    flag = f"--netns {name}" if name != "?" else "--netns NAME"
    raise ConfigError(f"no bpffs at {root} in this network namespace (`ip netns exec` gives it its own /sys): "
                      f"run without `ip netns exec` and pass {flag} instead")


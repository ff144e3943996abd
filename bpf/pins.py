"""bpffs: where pinned maps and links live so they outlast the process that made them.

A fresh machine has no bpffs at /sys/fs/bpf; `ensure_bpffs` mounts it once.
"""
from __future__ import annotations

import os
from pathlib import Path

from bpf._lib import ffi, lib
from bpf.errors import BpfError, error_for

DEFAULT_ROOT = Path("/sys/fs/bpf")


def mount_point_of(path: Path) -> tuple[str, str] | None:
    """(mount point, fs type) of the mount holding `path`, from /proc/self/mounts."""
    path = path.resolve()
    best = None
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            _, target, fstype, *_ = line.split()
            target = target.replace("\\040", " ")
            if path == Path(target) or Path(target) in path.parents:
                if best is None or len(target) >= len(best[0]):
                    best = (target, fstype)
    return best


def ensure_bpffs(root: str | os.PathLike = DEFAULT_ROOT) -> Path:
    """Make sure `root` lies on a bpffs, mounting one when it does not: at /sys/fs/bpf
    when `root` is below it (a fresh machine has only sysfs's empty directory there, in
    which no directory can be made), else at `root` itself.

    Raises BpfError when the mount fails (not root, or no bpffs in this kernel).
    """
    root = Path(root)
    if not on_bpffs(root):
        at = DEFAULT_ROOT if DEFAULT_ROOT in root.parents else root
        at.mkdir(parents=True, exist_ok=True)
        if not on_bpffs(at) and lib.mount(b"bpf", str(at).encode(), b"bpf", 0, ffi.NULL) != 0:
            raise error_for(ffi.errno, f"mount bpffs at {at}") from None
    root.mkdir(parents=True, exist_ok=True)
    return root


def on_bpffs(path: Path) -> bool:
    """Whether the nearest existing directory of `path` lies on a bpffs."""
    while not path.exists() and path != path.parent:
        path = path.parent
    found = mount_point_of(path)
    return found is not None and found[1] == "bpf"


def unpin(path: str | os.PathLike) -> None:
    """Remove a pin; a missing pin is not an error (the goal is that it is gone)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise BpfError(exc.errno, f"unpin {path}: {exc.strerror}") from exc

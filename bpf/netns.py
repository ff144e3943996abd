"""Run code inside a network namespace, on the calling thread only.

setns(2) is per thread: entering a namespace here does not move the rest of the
process. Sockets, libbpf attachments by ifindex and libnftables contexts created
inside keep acting in that namespace after the block ends.
"""
from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

from bpf.errors import NotFound

NETNS_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000


def _setns(fd: int) -> None:
    os.setns(fd, CLONE_NEWNET) if hasattr(os, "setns") else _libc_setns(fd)


def _libc_setns(fd: int) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def in_netns(name: str | None) -> Iterator[None]:
    """Enter the named namespace (from `ip netns add`) for the block; None stays put.

    Raises NotFound when no such namespace exists.
    """
    if name is None:
        yield
        return
    try:
        target = os.open(os.path.join(NETNS_DIR, name), os.O_RDONLY)
    except FileNotFoundError:
        raise NotFound(2, f"no network namespace {name!r}") from None
    home = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(target)
        os.close(home)

"""XDP attachment through a bpf_link: attach, replace atomically, pin, detach.

A bpf_link holds the program on the interface for as long as the link lives: closing
an unpinned link (or the process exiting) detaches it, a pinned link stays, which is how
protections outlive the agent. `update()` swaps the program in one step: every packet
meets either the old program or the new one; `upgrade()` does so only when the code
differs (program tags), over the program it found attached.

libbpf attaches by ifindex in the calling thread's network namespace: enter the
namespace first (see `bpf.netns`).
"""
from __future__ import annotations

import enum
import errno
import os
import socket
from dataclasses import dataclass

from bpf._lib import ffi, lib
from bpf.errors import ENOTSUPP, BpfError, NotFound, check
from bpf.object import Program


class XdpMode(enum.Enum):
    NATIVE = "native"  # in the driver (veth, most NICs): the fast path
    GENERIC = "generic"  # in the stack (skb): works everywhere, slower
    AUTO = "auto"  # native, else generic with the reason reported


_FLAGS = {XdpMode.NATIVE: "XDP_FLAGS_DRV_MODE", XdpMode.GENERIC: "XDP_FLAGS_SKB_MODE"}


@dataclass(frozen=True)
class XdpAttachment:
    """What the kernel says is attached to an interface."""

    ifindex: int
    mode: XdpMode | None  # None: nothing attached
    prog_id: int


def ifindex_of(interface: str | int) -> int:
    """An interface's index in the calling thread's namespace. Raises NotFound."""
    if isinstance(interface, int):
        return interface
    try:
        return socket.if_nametoindex(interface)
    except OSError:
        raise NotFound(errno.ENODEV, f"no interface {interface!r} in this namespace") from None


def xdp_query(interface: str | int) -> XdpAttachment:
    """Which XDP program is attached to the interface, and in which mode."""
    ifindex = ifindex_of(interface)
    opts = ffi.new("struct bpf_xdp_query_opts *")
    opts.sz = ffi.sizeof("struct bpf_xdp_query_opts")
    check(lib.bpf_xdp_query(ifindex, 0, opts), f"query XDP on ifindex {ifindex}")
    mode = {lib.XDP_ATTACHED_DRV: XdpMode.NATIVE, lib.XDP_ATTACHED_SKB: XdpMode.GENERIC}.get(
        opts.attach_mode)
    prog_id = opts.drv_prog_id if mode is XdpMode.NATIVE else opts.skb_prog_id
    return XdpAttachment(ifindex, mode, prog_id if mode else 0)


class Link:
    """An XDP bpf_link, owned through its fd.

    Raises: NotSupported when the mode is unavailable, AlreadyExists when another
    program holds the interface, BpfError for anything else the kernel refuses.
    """

    def __init__(self, fd: int, mode: XdpMode | None, *, fallback_reason: str | None = None):
        self.fd = fd
        self.mode = mode
        self.fallback_reason = fallback_reason  # why AUTO fell back to generic

    @classmethod
    def attach_xdp(cls, program: Program, interface: str | int,
                   mode: XdpMode = XdpMode.AUTO) -> "Link":
        ifindex = ifindex_of(interface)
        if mode is not XdpMode.AUTO:
            return cls(cls._create(program, ifindex, mode), mode)
        try:
            return cls(cls._create(program, ifindex, XdpMode.NATIVE), XdpMode.NATIVE)
        except BpfError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, ENOTSUPP, errno.EINVAL):
                raise
            fd = cls._create(program, ifindex, XdpMode.GENERIC)
            return cls(fd, XdpMode.GENERIC, fallback_reason=f"native XDP unavailable: {exc}")

    @staticmethod
    def _create(program: Program, ifindex: int, mode: XdpMode) -> int:
        opts = ffi.new("struct bpf_link_create_opts *")
        opts.sz = ffi.sizeof("struct bpf_link_create_opts")
        opts.flags = getattr(lib, _FLAGS[mode])
        return check(lib.bpf_link_create(program.fd, ifindex, lib.BPF_XDP, opts),
                     f"attach {program.name} to ifindex {ifindex} ({mode.value})")

    @classmethod
    def open_pinned(cls, path: str | os.PathLike) -> "Link":
        """Open a link pinned at path. Raises NotFound when nothing is pinned there.

        `mode` is read when the calling thread is in the interface's namespace (the
        interface there runs this link's program), else left None.
        """
        fd = check(lib.bpf_obj_get(os.fsencode(path)), f"open pinned link {path}")
        link = cls(fd, None)
        prog_id, ifindex = link._info()
        if ifindex:
            try:
                seen = xdp_query(ifindex)
            except BpfError:
                seen = None
            if seen is not None and seen.prog_id == prog_id:
                link.mode = seen.mode
        return link

    def _info(self) -> tuple[int, int]:
        prog_id, ifindex, kind = (ffi.new("uint32_t *") for _ in range(3))
        check(lib.bw_link_info(self.fd, prog_id, ifindex, kind), "read link info")
        return prog_id[0], ifindex[0]

    @property
    def prog_id(self) -> int:
        """The id of the program the link holds (a detached XDP link may still name it:
        `ifindex` is 0 then)."""
        return self._info()[0]

    @property
    def ifindex(self) -> int:
        """The interface the link holds (0 once detached or the interface is gone)."""
        return self._info()[1]

    def upgrade(self, program: Program) -> bool:
        """Run `program` instead of the one attached now if their code differs (program
        tags), atomically and only over that very program (BPF_F_REPLACE): a concurrent
        swap makes this fail rather than be overwritten. Never detaches. Returns whether
        it replaced. Raises NotFound when the link runs nothing (detached)."""
        prog_id, ifindex = self._info()
        if not prog_id or not ifindex:  # a detached XDP link may still name its program
            raise NotFound(errno.ENOLINK, "the link is detached: nothing to upgrade")
        with Program.open_id(prog_id) as running:
            if running.tag == program.tag:
                return False
            self.update(program, expected=running)
        return True

    def update(self, program: Program, *, expected: Program | None = None) -> None:
        """Replace the program atomically. With `expected`, only if that one runs now."""
        opts = ffi.new("struct bpf_link_update_opts *")
        opts.sz = ffi.sizeof("struct bpf_link_update_opts")
        if expected is not None:
            opts.flags = lib.BPF_F_REPLACE
            opts.old_prog_fd = expected.fd
        check(lib.bpf_link_update(self.fd, program.fd, opts), f"replace program with {program.name}")

    def pin(self, path: str | os.PathLike) -> None:
        """Pin the link so the program stays attached after this process exits."""
        check(lib.bpf_obj_pin(self.fd, os.fsencode(path)), f"pin link at {path}")

    def detach(self) -> None:
        """Detach the program from the interface now, pinned or not."""
        check(lib.bpf_link_detach(self.fd), "detach link")

    def close(self) -> None:
        """Release this fd; an unpinned link detaches, a pinned one stays."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "Link":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

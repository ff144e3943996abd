"""The Python face of libbpf and libnftables.

    Object   open/load a compiled .bpf.o; its Programs and Maps     (bpf.object)
    Program  fd, id, test_run (BPF_PROG_TEST_RUN)                    (bpf.object)
    Map      typed ops, per-CPU values, batches, pins                (bpf.maps)
    Link     XDP attach (native/generic), atomic replace, pin        (bpf.link)
    Nft      nftables JSON commands in this namespace                (bpf.nft)
    errors   BpfError(OSError) and its subclasses                    (bpf.errors)

No cffi object leaves this package: callers see ints, bytes, ctypes values and these classes.
"""
from bpf.btf import Layout, btf_layout, ctypes_layout
from bpf.errors import (
    AlreadyExists,
    BpfError,
    MapKeyNotFound,
    NftError,
    NoSpace,
    NotFound,
    NotSupported,
    VerifierRejected,
)
from bpf.link import Link, XdpAttachment, XdpMode, ifindex_of, xdp_query
from bpf.maps import Map, MapType, UpdateFlag, possible_cpus
from bpf.netns import in_netns
from bpf.nft import Nft
from bpf.object import Object, Program, TestRun, XdpAction
from bpf.pins import ensure_bpffs, unpin

__all__ = [
    "AlreadyExists", "BpfError", "Layout", "Link", "Map", "MapKeyNotFound", "MapType", "NftError",
    "NoSpace", "NotFound", "NotSupported", "Nft", "Object", "Program", "TestRun", "UpdateFlag",
    "VerifierRejected", "XdpAction", "XdpAttachment", "XdpMode", "btf_layout", "ctypes_layout",
    "ensure_bpffs", "ifindex_of", "in_netns", "possible_cpus", "unpin", "xdp_query",
]

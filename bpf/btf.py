"""Struct layouts as compiled (from an object's BTF) and as Python declares them (ctypes).

The kernel/user contract lives in one C header per program family; Python mirrors its
structs with ctypes. Comparing both layouts catches a field added on one side only.
"""
from __future__ import annotations

import ctypes
import errno
import os
from dataclasses import dataclass

from bpf._lib import ffi, lib
from bpf.errors import NotFound, check


@dataclass(frozen=True)
class Layout:
    name: str
    size: int
    fields: tuple[tuple[str, int, int], ...]  # (name, byte offset, byte size)


def btf_layout(object_path: str | os.PathLike, struct: str) -> Layout:
    """The layout of `struct NAME` as recorded in a compiled object's BTF."""
    btf = lib.btf__parse(os.fsencode(object_path), ffi.NULL)
    if btf == ffi.NULL:
        raise NotFound(ffi.errno or errno.ENOENT, f"no BTF in {object_path}")
    try:
        size, vlen = ffi.new("uint32_t *"), ffi.new("uint32_t *")
        type_id = lib.bw_btf_struct(btf, struct.encode(), size, vlen)
        if type_id < 0:
            raise NotFound(errno.ENOENT, f"{object_path}: no struct {struct} in its BTF")
        fields = []
        for i in range(vlen[0]):
            name, offset, field_size = ffi.new("char **"), ffi.new("uint32_t *"), ffi.new("long long *")
            check(lib.bw_btf_member(btf, type_id, i, name, offset, field_size), "read BTF member")
            fields.append((ffi.string(name[0]).decode(), offset[0] // 8, field_size[0]))
        return Layout(struct, size[0], tuple(fields))
    finally:
        lib.btf__free(btf)


def ctypes_layout(cls: type[ctypes.Structure], name: str | None = None) -> Layout:
    """The layout Python will use for a ctypes Structure."""
    fields = tuple((f[0], getattr(cls, f[0]).offset, getattr(cls, f[0]).size) for f in cls._fields_)
    return Layout(name or cls.__name__, ctypes.sizeof(cls), fields)

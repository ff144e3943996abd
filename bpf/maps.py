"""BPF maps from Python: typed get/set/delete/iterate, per-CPU values, batches, pins.

Keys and values are ctypes types (`ctypes.c_uint32`, a `ctypes.Structure` mirroring the
C struct in the program's header) or raw bytes when no type is given. Scalars come back
as Python ints; structures as instances of their class. Per-CPU maps read as a list with
one value per possible CPU.

Batches take sequences (converted one by one) or already packed bytes (the fast path for
millions of entries). Where the kernel has no batch op for a map type, they fall back to
a loop of single operations with the same result.
"""
from __future__ import annotations

import ctypes
import enum
import errno
import os
from collections.abc import Iterator, Sequence
from typing import Any

from bpf._lib import ffi, lib
from bpf.errors import ENOTSUPP, BpfError, MapKeyNotFound, NotSupported, check

BATCH_CHUNK = 65536  # entries per batch syscall: bounded time inside the kernel per call


class MapType(enum.IntEnum):
    HASH = 1
    ARRAY = 2
    PROG_ARRAY = 3
    PERCPU_HASH = 5
    PERCPU_ARRAY = 6
    LRU_HASH = 9
    LRU_PERCPU_HASH = 10
    LPM_TRIE = 11
    ARRAY_OF_MAPS = 12
    HASH_OF_MAPS = 13
    RINGBUF = 27

    @property
    def per_cpu(self) -> bool:
        return self in {MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH}


NO_PREALLOC = 1  # BPF_F_NO_PREALLOC: entries allocated on insert (LPM tries need it)
MMAPABLE = 1 << 10  # BPF_F_MMAPABLE: an array user space can mmap and fill in place
INNER_MAP = 1 << 12  # BPF_F_INNER_MAP: an inner array whose size may differ from the template


class UpdateFlag(enum.IntEnum):
    ANY = 0
    NOEXIST = 1
    EXIST = 2


def possible_cpus() -> int:
    return check(lib.libbpf_num_possible_cpus(), "count possible CPUs")


class Codec:
    """Converts between Python values and the bytes of one C type of a known size."""

    def __init__(self, ctype: Any, size: int, role: str):
        self.ctype = ctype
        self.size = size
        if ctype is not None and ctypes.sizeof(ctype) != size:
            raise BpfError(
                errno.EINVAL,
                f"{role} type {ctype.__name__} is {ctypes.sizeof(ctype)} bytes, the map's is {size}",
            )
        self.scalar = ctype is not None and issubclass(ctype, ctypes._SimpleCData)

    def encode(self, value: Any) -> bytes:
        if self.ctype is None:
            data = bytes(value)
        elif isinstance(value, self.ctype):
            data = bytes(value)
        elif isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
        elif self.scalar:
            data = bytes(self.ctype(value))
        elif isinstance(value, tuple):
            data = bytes(self.ctype(*value))
        elif isinstance(value, dict):
            data = bytes(self.ctype(**value))
        else:
            raise TypeError(f"cannot encode {value!r} as {self.ctype.__name__}")
        if len(data) != self.size:
            raise ValueError(f"{len(data)} bytes given where the map takes {self.size}")
        return data

    def decode(self, data: bytes) -> Any:
        if self.ctype is None:
            return bytes(data)
        obj = self.ctype.from_buffer_copy(data)
        return obj.value if self.scalar else obj


class Map:
    """A live BPF map, owned through its fd (closed with `close()` or the owning Object).

    Raises: MapKeyNotFound on a missing key, AlreadyExists/NoSpace on updates the map
    refuses, BpfError for anything else the kernel says.
    """

    def __init__(self, fd: int, name: str, map_type: int, key_size: int, value_size: int,
                 max_entries: int, *, key_type: Any = None, value_type: Any = None,
                 owns_fd: bool = False):
        self.fd = fd
        self.name = name
        self.type = MapType(map_type) if map_type in MapType._value2member_map_ else map_type
        self.key_size = key_size
        self.value_size = value_size
        self.max_entries = max_entries
        self._owns_fd = owns_fd
        self._key = Codec(key_type, key_size, "key")
        self._value = Codec(value_type, value_size, "value")
        self.per_cpu = isinstance(self.type, MapType) and self.type.per_cpu
        self.ncpus = possible_cpus() if self.per_cpu else 1
        self._stride = (value_size + 7) // 8 * 8 if self.per_cpu else value_size

    # ---- construction ----
    @classmethod
    def open_pinned(cls, path: str | os.PathLike, *, key_type: Any = None,
                    value_type: Any = None) -> "Map":
        """Open a map pinned at `path`. Raises NotFound when nothing is pinned there."""
        fd = check(lib.bpf_obj_get(os.fsencode(path)), f"open pinned map {path}")
        return cls.from_fd(fd, key_type=key_type, value_type=value_type, owns_fd=True)

    @classmethod
    def create(cls, map_type: MapType, name: str, key_size: int, value_size: int,
               max_entries: int, *, flags: int = 0, key_type: Any = None,
               value_type: Any = None) -> "Map":
        """A new map owned by this object (e.g. an inner map to swap in whole).

        Raises NoSpace when the kernel cannot allocate it, BpfError otherwise.
        """
        opts = ffi.new("struct bpf_map_create_opts *")
        opts.sz = ffi.sizeof("struct bpf_map_create_opts")
        opts.map_flags = flags
        fd = check(lib.bpf_map_create(int(map_type), name.encode()[:15], key_size, value_size,
                                      max_entries, opts), f"create map {name}")
        return cls(fd, name, int(map_type), key_size, value_size, max_entries,
                   key_type=key_type, value_type=value_type, owns_fd=True)

    @classmethod
    def from_fd(cls, fd: int, *, key_type: Any = None, value_type: Any = None,
                owns_fd: bool = False) -> "Map":
        info = [ffi.new("uint32_t *") for _ in range(4)]
        name = ffi.new("char[]", 16)
        check(lib.bw_map_info(fd, *info, name, 16), f"read info of map fd {fd}")
        kind, key_size, value_size, max_entries = (p[0] for p in info)
        return cls(fd, ffi.string(name).decode(), kind, key_size, value_size, max_entries,
                   key_type=key_type, value_type=value_type, owns_fd=owns_fd)

    def typed(self, key_type: Any = None, value_type: Any = None) -> "Map":
        """The same map seen through other key/value types (shares the fd)."""
        return Map(self.fd, self.name, int(self.type), self.key_size, self.value_size,
                   self.max_entries, key_type=key_type, value_type=value_type)

    def close(self) -> None:
        if self._owns_fd and self.fd >= 0:
            os.close(self.fd)
        self.fd = -1

    def __enter__(self) -> "Map":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Map {self.name} {getattr(self.type, 'name', self.type)} fd={self.fd}>"

    # ---- values ----
    def _value_buffer(self, count: int = 1):
        return ffi.new("char[]", max(1, self._stride * self.ncpus * count))

    def _encode_value(self, value: Any) -> bytes:
        """One value; per-CPU maps take a list (one per CPU) or one value for every CPU."""
        if not self.per_cpu:
            return self._value.encode(value)
        values = value if isinstance(value, list) else [value] * self.ncpus
        if len(values) != self.ncpus:
            raise ValueError(f"{self.name}: {len(values)} per-CPU values for {self.ncpus} CPUs")
        pad = b"\0" * (self._stride - self.value_size)
        return b"".join(self._value.encode(v) + pad for v in values)

    def _decode_value(self, data: bytes) -> Any:
        if not self.per_cpu:
            return self._value.decode(data)
        return [self._value.decode(data[i * self._stride:i * self._stride + self.value_size])
                for i in range(self.ncpus)]

    # ---- single operations ----
    def get(self, key: Any, default: Any = ...) -> Any:
        """The value at key (a list per CPU for per-CPU maps). Raises MapKeyNotFound."""
        out = self._value_buffer()
        rc = lib.bpf_map_lookup_elem(self.fd, self._key.encode(key), out)
        if rc < 0:
            if -rc == errno.ENOENT:
                if default is not ...:
                    return default
                raise MapKeyNotFound(errno.ENOENT, f"{self.name}: key {key!r} not found")
            check(rc, f"{self.name}: lookup")
        return self._decode_value(ffi.buffer(out, self._stride * self.ncpus)[:])

    def __getitem__(self, key: Any) -> Any:
        return self.get(key)

    def set(self, key: Any, value: Any, flag: UpdateFlag = UpdateFlag.ANY) -> None:
        """Set key to value; per-CPU maps take a list (one per CPU) or one value for all."""
        check(lib.bpf_map_update_elem(self.fd, self._key.encode(key), self._encode_value(value),
                                      int(flag)), f"{self.name}: update")

    def __setitem__(self, key: Any, value: Any) -> None:
        self.set(key, value)

    def delete(self, key: Any) -> None:
        """Delete key. Raises MapKeyNotFound when it is not there."""
        rc = lib.bpf_map_delete_elem(self.fd, self._key.encode(key))
        if rc < 0 and -rc == errno.ENOENT:
            raise MapKeyNotFound(errno.ENOENT, f"{self.name}: key {key!r} not found")
        check(rc, f"{self.name}: delete")

    def __delitem__(self, key: Any) -> None:
        self.delete(key)

    def __contains__(self, key: Any) -> bool:
        return self.get(key, None) is not None

    # ---- iteration ----
    def raw_keys(self) -> Iterator[bytes]:
        """Every key as bytes, walking the map with get_next_key."""
        current = ffi.NULL
        nxt = ffi.new("char[]", self.key_size)
        while True:
            rc = lib.bpf_map_get_next_key(self.fd, current, nxt)
            if rc < 0:
                if -rc == errno.ENOENT:
                    return
                check(rc, f"{self.name}: next key")
            key = ffi.buffer(nxt, self.key_size)[:]
            yield key
            current = ffi.new("char[]", key)

    def keys(self) -> Iterator[Any]:
        return (self._key.decode(k) for k in self.raw_keys())

    __iter__ = keys

    def items(self) -> Iterator[tuple[Any, Any]]:
        """(key, value) pairs: one batch lookup where the kernel has it, a walk otherwise."""
        try:
            keys, values, count = self.lookup_batch_raw()
        except NotSupported:
            for raw in self.raw_keys():
                value = self.get(raw, None)
                if value is not None:
                    yield self._key.decode(raw), value
            return
        width = self._stride * self.ncpus
        for i in range(count):
            yield (self._key.decode(keys[i * self.key_size:(i + 1) * self.key_size]),
                   self._decode_value(values[i * width:(i + 1) * width]))

    def __len__(self) -> int:
        return sum(1 for _ in self.raw_keys())

    # ---- batches ----
    def update_batch(self, keys: Sequence[Any] | bytes, values: Sequence[Any] | bytes,
                     flag: UpdateFlag = UpdateFlag.ANY) -> int:
        """Set many entries; keys/values as sequences or as packed bytes. Returns the count."""
        key_bytes = keys if isinstance(keys, (bytes, bytearray, memoryview)) else b"".join(
            self._key.encode(k) for k in keys)
        value_bytes = values if isinstance(values, (bytes, bytearray, memoryview)) else b"".join(
            self._encode_value(v) for v in values)
        count = len(key_bytes) // self.key_size
        width = self._stride * self.ncpus
        if len(value_bytes) != count * width:
            raise ValueError(f"{self.name}: {count} keys but {len(value_bytes) // width} values")
        return self._chunked(count, lambda start, n: self._update_chunk(
            key_bytes, value_bytes, start, n, int(flag)))

    def delete_batch(self, keys: Sequence[Any] | bytes) -> int:
        """Delete many keys. Raises MapKeyNotFound if one is missing (earlier ones are gone)."""
        key_bytes = keys if isinstance(keys, (bytes, bytearray, memoryview)) else b"".join(
            self._key.encode(k) for k in keys)
        count = len(key_bytes) // self.key_size
        return self._chunked(count, lambda start, n: self._delete_chunk(key_bytes, start, n))

    def lookup_batch_raw(self) -> tuple[bytes, bytes, int]:
        """All (keys, values) as packed bytes. Raises NotSupported where the kernel lacks it."""
        total = max(self.max_entries, 1)
        keys = ffi.new("char[]", self.key_size * total)
        values = self._value_buffer(total)
        token_size = max(self.key_size, 8)
        token_in, token_out = ffi.new("char[]", token_size), ffi.new("char[]", token_size)
        first = True
        got = 0
        opts = ffi.new("struct bpf_map_batch_opts *", {"sz": ffi.sizeof("struct bpf_map_batch_opts")})
        width = self._stride * self.ncpus
        while got < total:
            count = ffi.new("uint32_t *", min(BATCH_CHUNK, total - got))
            rc = lib.bpf_map_lookup_batch(self.fd, ffi.NULL if first else token_in, token_out,
                                          keys + got * self.key_size, values + got * width,
                                          count, opts)
            got += count[0]
            if rc < 0:
                if -rc == errno.ENOENT:  # the walk reached the end
                    break
                if -rc in (errno.EINVAL, errno.EOPNOTSUPP, ENOTSUPP) and first:
                    raise NotSupported(-rc, f"{self.name}: batch lookup not supported")
                check(rc, f"{self.name}: batch lookup")
            ffi.memmove(token_in, token_out, token_size)
            first = False
        return ffi.buffer(keys, got * self.key_size)[:], ffi.buffer(values, got * width)[:], got

    def _chunked(self, count: int, op) -> int:
        done = 0
        while done < count:
            n = min(BATCH_CHUNK, count - done)
            op(done, n)
            done += n
        return done

    def _update_chunk(self, keys, values, start: int, n: int, flag: int) -> None:
        width = self._stride * self.ncpus
        key_base, value_base = ffi.from_buffer(keys), ffi.from_buffer(values)
        kptr, vptr = key_base + start * self.key_size, value_base + start * width
        count = ffi.new("uint32_t *", n)
        opts = ffi.new("struct bpf_map_batch_opts *",
                       {"sz": ffi.sizeof("struct bpf_map_batch_opts"), "elem_flags": flag})
        rc = lib.bpf_map_update_batch(self.fd, kptr, vptr, count, opts)
        if rc < 0 and -rc in (errno.EINVAL, errno.EOPNOTSUPP, ENOTSUPP) and count[0] == 0:
            for i in range(n):  # no batch op for this map type: same result, one by one
                check(lib.bpf_map_update_elem(self.fd, kptr + i * self.key_size, vptr + i * width,
                                              flag), f"{self.name}: update")
            return
        check(rc, f"{self.name}: batch update")

    def _delete_chunk(self, keys, start: int, n: int) -> None:
        key_base = ffi.from_buffer(keys)
        kptr = key_base + start * self.key_size
        count = ffi.new("uint32_t *", n)
        opts = ffi.new("struct bpf_map_batch_opts *", {"sz": ffi.sizeof("struct bpf_map_batch_opts")})
        rc = lib.bpf_map_delete_batch(self.fd, kptr, count, opts)
        if rc < 0 and -rc in (errno.EINVAL, errno.EOPNOTSUPP, ENOTSUPP) and count[0] == 0:
            for i in range(n):
                rc = lib.bpf_map_delete_elem(self.fd, kptr + i * self.key_size)
                if rc < 0 and -rc == errno.ENOENT:
                    raise MapKeyNotFound(errno.ENOENT, f"{self.name}: batch delete of a missing key")
                check(rc, f"{self.name}: delete")
            return
        if rc < 0 and -rc == errno.ENOENT:
            raise MapKeyNotFound(errno.ENOENT, f"{self.name}: batch delete of a missing key")
        check(rc, f"{self.name}: batch delete")

    # ---- pins ----
    def pin(self, path: str | os.PathLike) -> None:
        """Pin at path (on a bpffs). Raises AlreadyExists when the path is taken."""
        check(lib.bpf_obj_pin(self.fd, os.fsencode(path)), f"{self.name}: pin at {path}")

    def unpin(self, path: str | os.PathLike) -> None:
        from bpf.pins import unpin

        unpin(path)


"""Reading a BPF ring buffer: records the program wrote, drained on demand.

`drain()` returns whatever is waiting without blocking; `fileno()` is an epoll fd that
becomes readable when records arrive, for callers that wait (trio's wait_readable).
"""
from __future__ import annotations

import os

from bpf._lib import ffi, lib
from bpf.errors import check, error_for
from bpf.maps import Map

_collectors: dict[int, list[bytes]] = {}


@ffi.def_extern()
def bw_ring_sample(ctx, data, size):
    _collectors[int(ffi.cast("uintptr_t", ctx))].append(ffi.buffer(data, size)[:])
    return 0


class RingBuffer:
    """Consumer side of a BPF_MAP_TYPE_RINGBUF map. Raises BpfError if it cannot attach."""

    def __init__(self, ring: Map):
        self._key = id(self)
        _collectors[self._key] = []
        self._rb = lib.ring_buffer__new(ring.fd, lib.bw_ring_sample,
                                        ffi.cast("void *", self._key), ffi.NULL)
        if self._rb == ffi.NULL:
            del _collectors[self._key]
            raise error_for(ffi.errno or 22, f"open ring buffer {ring.name}")

    def drain(self, limit: int | None = None) -> list[bytes]:
        """Every record waiting now (oldest first), up to `limit` kept."""
        check(lib.ring_buffer__consume(self._rb), "consume ring buffer")
        records = _collectors[self._key]
        _collectors[self._key] = []
        return records if limit is None else records[:limit]

    def fileno(self) -> int:
        return lib.ring_buffer__epoll_fd(self._rb)

    def close(self) -> None:
        if getattr(self, "_rb", None) is not None:
            lib.ring_buffer__free(self._rb)
            self._rb = None
            _collectors.pop(self._key, None)

    def __enter__(self) -> "RingBuffer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
